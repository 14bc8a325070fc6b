"""Tests of argument parsing and of the operation parameters built from it."""

from __future__ import annotations

import io

import pytest

from pixtools_cli.__main__ import main
from pixtools_cli.cli import (
    QualitySpec,
    build_operation_params,
    parse_arguments,
    parse_operations,
    quality_spec,
)
from pixtools_cli.errors import UsageError
from pixtools_cli.exit_codes import ExitCode


def test_parse_operations_splits_and_dedupes() -> None:
    assert parse_operations(["jpg,webp", "avif", "JPG", " metadata "]) == [
        "jpg",
        "webp",
        "avif",
        "metadata",
    ]


def test_parse_operations_rejects_unknown() -> None:
    with pytest.raises(UsageError, match="unknown operation 'gif'"):
        parse_operations(["jpg,gif"])


def test_parse_operations_rejects_empty() -> None:
    with pytest.raises(UsageError, match="no operation given"):
        parse_operations([","])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("70", QualitySpec(None, 70)),
        ("webp=70", QualitySpec("webp", 70)),
        ("AVIF=1", QualitySpec("avif", 1)),
        ("jpg=100", QualitySpec("jpg", 100)),
    ],
)
def test_quality_spec_valid(text: str, expected: QualitySpec) -> None:
    assert quality_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "outside 1-100"),
        ("101", "outside 1-100"),
        ("webp=high", "invalid quality 'high'"),
        ("gif=50", "unknown operation 'gif'"),
    ],
)
def test_quality_spec_invalid(text: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        quality_spec(text)


def test_params_bare_quality_goes_to_lossy_operations() -> None:
    params = build_operation_params(
        ["jpg", "png", "webp", "metadata"], qualities=[QualitySpec(None, 60)]
    )

    assert params == {"jpg": {"quality": 60}, "webp": {"quality": 60}}


def test_params_operation_quality_wins_over_bare() -> None:
    params = build_operation_params(
        ["jpg", "webp"],
        qualities=[QualitySpec("webp", 70), QualitySpec(None, 90)],
    )

    assert params == {"jpg": {"quality": 90}, "webp": {"quality": 70}}


def test_params_size_goes_to_image_operations() -> None:
    params = build_operation_params(
        ["jpg", "png", "metadata", "denoise"], width=800, height=600, allow_upscale=True
    )

    expected = {"width": 800, "height": 600, "allow_upscale": True}
    assert params == {"jpg": expected, "png": expected, "denoise": expected}


def test_params_denoise_format_takes_quality() -> None:
    params = build_operation_params(
        ["denoise"], qualities=[QualitySpec(None, 75)], denoise_format="webp"
    )

    assert params == {"denoise": {"format": "webp", "quality": 75}}


@pytest.mark.parametrize(
    ("operations", "kwargs", "message"),
    [
        (["png"], {"qualities": [QualitySpec("png", 50)]}, "png is lossless"),
        (["jpg"], {"qualities": [QualitySpec("webp", 50)]}, "add --op webp"),
        (["png", "metadata"], {"qualities": [QualitySpec(None, 50)]}, "none of"),
        (["denoise"], {"qualities": [QualitySpec("denoise", 50)]}, "--denoise-format"),
        (["metadata"], {"width": 100}, "none of them is requested"),
        (["jpg"], {"denoise_format": "jpg"}, "needs --op denoise"),
    ],
)
def test_params_reject_options_that_cannot_apply(
    operations: list[str], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        build_operation_params(operations, **kwargs)  # type: ignore[arg-type]


def test_parse_arguments_submit() -> None:
    arguments = parse_arguments(
        [
            "submit",
            "a.jpg",
            "b.png",
            "--op",
            "jpg",
            "--op",
            "webp",
            "--quality",
            "webp=70",
            "--width",
            "800",
            "--out",
            "results",
            "--api-url",
            "http://127.0.0.1:9000",
            "--api-key",
            "secret-key",
        ]
    )

    assert arguments.command == "submit"
    assert arguments.files == ["a.jpg", "b.png"]
    assert arguments.operations == ["jpg", "webp"]
    assert arguments.params == {
        "jpg": {"width": 800},
        "webp": {"quality": 70, "width": 800},
    }
    assert str(arguments.out) == "results"
    assert arguments.api_url == "http://127.0.0.1:9000"
    assert arguments.api_key == "secret-key"


def test_parse_arguments_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXTOOLS_API_URL", "http://127.0.0.1:7000")
    monkeypatch.setenv("PIXTOOLS_API_KEY", "env-key")

    arguments = parse_arguments(["status", "job-1"])

    assert arguments.api_url == "http://127.0.0.1:7000"
    assert arguments.api_key == "env-key"


def run_main(argv: list[str]) -> tuple[int, str, str]:
    stdout = io.StringIO()
    stderr = io.StringIO()
    code = main(argv, stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def test_main_usage_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, _err = run_main(["submit", "a.jpg", "--op", "png", "--quality", "5"])

    assert code == ExitCode.USAGE
    assert "--quality applies to jpg, webp, avif" in capsys.readouterr().err


def test_main_unknown_option_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, _err = run_main(["status"])

    assert code == ExitCode.USAGE
    assert "the following arguments are required: JOB_ID" in capsys.readouterr().err


def test_main_missing_file_exits_1() -> None:
    code, out, err = run_main(
        ["submit", "/nonexistent/photo.jpg", "--op", "jpg", "--api-url", "http://x"]
    )

    assert code == ExitCode.USAGE
    assert out == ""
    assert "/nonexistent/photo.jpg: no such file" in err


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, _err = run_main(["submit", "--help"])

    text = capsys.readouterr().out
    assert code == 0
    for number in range(6):
        assert f"\n  {number}  " in text
    assert "highest code that applies wins" in text
