from __future__ import annotations

import json

import pytest

from pixtools_shared.errors import InvalidOperationsError
from pixtools_shared.operations import (
    OPERATIONS,
    OperationName,
    get_operation_spec,
    parse_operation_request,
)


def fields_of(error: InvalidOperationsError) -> list[str]:
    return [detail["field"] for detail in error.details]


def test_parse_fills_defaults() -> None:
    requests = parse_operation_request('["jpg", "png", "webp", "avif", "metadata"]')
    by_name = {request.name: request.params for request in requests}
    assert by_name[OperationName.JPG] == {
        "width": None,
        "height": None,
        "allow_upscale": False,
        "quality": 85,
    }
    assert by_name[OperationName.WEBP]["quality"] == 80
    assert by_name[OperationName.AVIF]["quality"] == 60
    assert by_name[OperationName.PNG] == {
        "width": None,
        "height": None,
        "allow_upscale": False,
        "compress_level": None,
    }
    assert by_name[OperationName.METADATA] == {}


def test_parse_keeps_request_order() -> None:
    requests = parse_operation_request('["metadata", "avif", "jpg"]')
    assert [request.name.value for request in requests] == ["metadata", "avif", "jpg"]


def test_parse_with_params() -> None:
    params = {
        "jpg": {"quality": 92, "width": 800},
        "denoise": {"format": "webp", "quality": 70, "height": 300},
        "png": {"compress_level": 9, "allow_upscale": True, "width": 2000},
    }
    requests = parse_operation_request('["jpg", "denoise", "png"]', json.dumps(params))
    by_name = {request.name.value: request for request in requests}
    assert by_name["jpg"].params["quality"] == 92
    assert by_name["jpg"].params["width"] == 800
    assert by_name["denoise"].params == {
        "width": None,
        "height": 300,
        "allow_upscale": False,
        "format": "webp",
        "quality": 70,
    }
    assert by_name["denoise"].extension == "webp"
    assert by_name["denoise"].content_type == "image/webp"
    assert by_name["png"].params["compress_level"] == 9
    assert by_name["png"].params["allow_upscale"] is True


@pytest.mark.parametrize("params_json", [None, "", "  ", "{}", "null"])
def test_empty_params_accepted(params_json: str | None) -> None:
    requests = parse_operation_request('["jpg"]', params_json)
    assert requests[0].params["quality"] == 85


@pytest.mark.parametrize(
    ("operations_json", "field", "message_part"),
    [
        ("not json", "operations", "JSON list"),
        ('{"jpg": {}}', "operations", "JSON list"),
        ('"jpg"', "operations", "JSON list"),
        ("[]", "operations", "at least one"),
        ('["gif"]', "operations[0]", "unknown operation 'gif'"),
        ('["JPG"]', "operations[0]", "unknown operation"),
        ('["jpg", "jpg"]', "operations[1]", "duplicate operation 'jpg'"),
        ("[1]", "operations[0]", "must be a string"),
        ("[null]", "operations[0]", "must be a string"),
    ],
)
def test_bad_operations_list(
    operations_json: str, field: str, message_part: str
) -> None:
    with pytest.raises(InvalidOperationsError) as caught:
        parse_operation_request(operations_json)
    assert caught.value.details[0]["field"] == field
    assert message_part in caught.value.details[0]["message"]
    assert caught.value.code == "invalid-operations"
    assert caught.value.http_status == 422


@pytest.mark.parametrize(
    ("params", "field", "message_part"),
    [
        ({"png": {}}, "params.png", "not requested"),
        ({"jpg": {"qualty": 80}}, "params.jpg.qualty", "unknown parameter"),
        ({"jpg": {"quality": 0}}, "params.jpg.quality", "greater than or equal to 1"),
        ({"jpg": {"quality": 101}}, "params.jpg.quality", "less than or equal to 100"),
        ({"jpg": {"quality": "90"}}, "params.jpg.quality", "valid integer"),
        ({"jpg": {"quality": 90.0}}, "params.jpg.quality", "valid integer"),
        ({"jpg": {"quality": True}}, "params.jpg.quality", "valid integer"),
        ({"jpg": {"width": 0}}, "params.jpg.width", "greater than or equal to 1"),
        ({"jpg": {"width": 20_001}}, "params.jpg.width", "at most 20000"),
        ({"jpg": {"allow_upscale": "yes"}}, "params.jpg.allow_upscale", "boolean"),
        ({"jpg": []}, "params.jpg", "JSON object"),
    ],
)
def test_bad_params(params: dict[str, object], field: str, message_part: str) -> None:
    with pytest.raises(InvalidOperationsError) as caught:
        parse_operation_request('["jpg"]', json.dumps(params))
    assert fields_of(caught.value) == [field]
    assert message_part in caught.value.details[0]["message"]


@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("png", {"quality": 80}, "params.png.quality"),
        ("png", {"compress_level": 10}, "params.png.compress_level"),
        ("metadata", {"width": 10}, "params.metadata.width"),
        ("denoise", {"format": "gif"}, "params.denoise.format"),
        ("denoise", {"quality": 50}, "params.denoise"),
        ("webp", {"height": -3}, "params.webp.height"),
    ],
)
def test_operation_specific_params(
    operation: str, params: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidOperationsError) as caught:
        parse_operation_request(
            json.dumps([operation]), json.dumps({operation: params})
        )
    assert fields_of(caught.value) == [field]


def test_max_side_argument() -> None:
    parse_operation_request('["jpg"]', '{"jpg": {"width": 500}}', max_side=500)
    with pytest.raises(InvalidOperationsError) as caught:
        parse_operation_request('["jpg"]', '{"jpg": {"width": 501}}', max_side=500)
    assert caught.value.details[0]["message"] == "must be at most 500 pixels"


def test_all_problems_reported_together() -> None:
    params = {"jpg": {"quality": 0, "extra": 1}, "png": {}}
    with pytest.raises(InvalidOperationsError) as caught:
        parse_operation_request('["jpg"]', json.dumps(params))
    assert sorted(fields_of(caught.value)) == [
        "params.jpg.extra",
        "params.jpg.quality",
        "params.png",
    ]
    assert "(and 2 more)" in caught.value.message


@pytest.mark.parametrize("params_json", ["[1]", '"x"', "{bad"])
def test_params_must_be_object(params_json: str) -> None:
    with pytest.raises(InvalidOperationsError) as caught:
        parse_operation_request('["jpg"]', params_json)
    assert fields_of(caught.value) == ["params"]


def test_registry_specs() -> None:
    assert set(OPERATIONS) == set(OperationName)
    assert OPERATIONS[OperationName.DENOISE].queue == "ml"
    standard = {name for name, spec in OPERATIONS.items() if spec.queue == "standard"}
    assert {op.value for op in standard} == {"jpg", "png", "webp", "avif", "metadata"}
    assert OPERATIONS[OperationName.METADATA].content_type == "application/json"
    assert OPERATIONS[OperationName.METADATA].extension == "json"
    assert OPERATIONS[OperationName.JPG].content_type == "image/jpeg"
    assert get_operation_spec("avif").extension == "avif"


def test_unknown_spec_lookup() -> None:
    with pytest.raises(InvalidOperationsError, match="Unknown operation 'bmp'"):
        get_operation_spec("bmp")


def test_error_body_shape() -> None:
    with pytest.raises(InvalidOperationsError) as caught:
        parse_operation_request('["nope"]')
    body = caught.value.to_dict()
    assert body["error"]["code"] == "invalid-operations"
    assert body["error"]["details"] == [
        {
            "field": "operations[0]",
            "message": "unknown operation 'nope'; expected one of avif, denoise, "
            "jpg, metadata, png, webp",
        }
    ]
