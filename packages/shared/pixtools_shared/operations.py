"""Registry of the operations a job can request, and parsing of the request.

A request names its operations as a JSON list (`["jpg", "webp", "metadata"]`) and
optionally gives parameters as a JSON object keyed by operation name
(`{"jpg": {"quality": 90, "width": 800}}`). `parse_operation_request` validates
both and returns one `OperationRequest` per operation with every default filled
in, or raises `InvalidOperationsError` listing each problem with its field path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pixtools_shared.errors import ErrorDetail, InvalidOperationsError

# Used when the caller passes no max_side; equals the MAX_IMAGE_SIDE default.
DEFAULT_MAX_SIDE = 20_000


class OperationName(StrEnum):
    JPG = "jpg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    DENOISE = "denoise"
    METADATA = "metadata"


Queue = Literal["standard", "ml"]
ImageOutputFormat = Literal["jpg", "png", "webp", "avif"]

# Quality used when a request gives none, per output format.
DEFAULT_QUALITY: dict[str, int] = {"jpg": 85, "webp": 80, "avif": 60}


class _Params(BaseModel):
    # strict: "85", 85.0 and true are rejected for an integer field instead of
    # being coerced, so a client learns about its wrong type.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _ResizeParams(_Params):
    width: int | None = Field(default=None, ge=1)
    height: int | None = Field(default=None, ge=1)
    allow_upscale: bool = False

    @field_validator("width", "height")
    @classmethod
    def _check_max_side(cls, value: int | None, info: ValidationInfo) -> int | None:
        max_side = DEFAULT_MAX_SIDE
        if isinstance(info.context, dict):
            max_side = int(info.context.get("max_side", DEFAULT_MAX_SIDE))
        if value is not None and value > max_side:
            raise ValueError(f"must be at most {max_side} pixels")
        return value


class JpgParams(_ResizeParams):
    quality: int = Field(default=DEFAULT_QUALITY["jpg"], ge=1, le=100)


class PngParams(_ResizeParams):
    compress_level: int | None = Field(default=None, ge=0, le=9)


class WebpParams(_ResizeParams):
    quality: int = Field(default=DEFAULT_QUALITY["webp"], ge=1, le=100)


class AvifParams(_ResizeParams):
    quality: int = Field(default=DEFAULT_QUALITY["avif"], ge=1, le=100)


class DenoiseParams(_ResizeParams):
    format: ImageOutputFormat = "png"
    quality: int | None = Field(default=None, ge=1, le=100)
    """None means the default quality of `format`."""

    @model_validator(mode="after")
    def _check_quality_applies(self) -> DenoiseParams:
        if self.format == "png" and self.quality is not None:
            raise ValueError("quality does not apply to png output; remove it")
        return self


class MetadataParams(_Params):
    pass


@dataclass(frozen=True)
class OperationSpec:
    """Static facts about one operation: where it runs and what it produces."""

    name: OperationName
    queue: Queue
    params_model: type[_Params]
    extension: str
    content_type: str


CONTENT_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "json": "application/json",
}

OPERATIONS: dict[OperationName, OperationSpec] = {
    spec.name: spec
    for spec in (
        OperationSpec(OperationName.JPG, "standard", JpgParams, "jpg", "image/jpeg"),
        OperationSpec(OperationName.PNG, "standard", PngParams, "png", "image/png"),
        OperationSpec(OperationName.WEBP, "standard", WebpParams, "webp", "image/webp"),
        OperationSpec(OperationName.AVIF, "standard", AvifParams, "avif", "image/avif"),
        OperationSpec(OperationName.DENOISE, "ml", DenoiseParams, "png", "image/png"),
        OperationSpec(
            OperationName.METADATA,
            "standard",
            MetadataParams,
            "json",
            "application/json",
        ),
    )
}


@dataclass(frozen=True)
class OperationRequest:
    """One validated operation of a job; `params` has every default filled in."""

    name: OperationName
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> OperationSpec:
        return OPERATIONS[self.name]

    @property
    def extension(self) -> str:
        """File extension of the result (denoise follows its `format` param)."""
        if self.name is OperationName.DENOISE:
            return str(self.params.get("format", "png"))
        return self.spec.extension

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.extension]


def get_operation_spec(name: str) -> OperationSpec:
    """Look up an operation by name; raise InvalidOperationsError if unknown."""
    try:
        return OPERATIONS[OperationName(name)]
    except ValueError:
        raise InvalidOperationsError(
            f"Unknown operation {name!r}.",
            [{"field": "operations", "message": f"unknown operation {name!r}"}],
        ) from None


def parse_operation_request(
    operations_json: str,
    params_json: str | None = None,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
) -> list[OperationRequest]:
    """Validate the operations list and parameters of a job request.

    `max_side` caps `width` and `height` (pass Settings.MAX_IMAGE_SIDE). Raises
    InvalidOperationsError with one details entry per problem found.
    """
    names = _parse_names(operations_json)
    raw_params = _parse_params_object(params_json)

    errors: list[ErrorDetail] = []
    for key in raw_params:
        if key not in names:
            errors.append(
                {
                    "field": f"params.{key}",
                    "message": f"parameters given for {key!r}, which is not requested",
                }
            )

    requests: list[OperationRequest] = []
    for name in names:
        operation = OperationName(name)
        requested_params = raw_params.get(name, {})
        if not isinstance(requested_params, dict):
            errors.append(
                {"field": f"params.{name}", "message": "must be a JSON object"}
            )
            continue
        model = OPERATIONS[operation].params_model
        try:
            validated = model.model_validate(
                requested_params, context={"max_side": max_side}
            )
        except ValidationError as exc:
            errors.extend(_details_from_validation(name, exc))
            continue
        requests.append(OperationRequest(operation, validated.model_dump()))

    if errors:
        raise InvalidOperationsError(_summarize(errors), errors)
    return requests


def _parse_names(operations_json: str) -> list[str]:
    try:
        value = json.loads(operations_json)
    except (json.JSONDecodeError, TypeError):
        raise _single_error(
            "operations", "must be a JSON list of operation names"
        ) from None

    if not isinstance(value, list):
        raise _single_error("operations", "must be a JSON list of operation names")
    if not value:
        raise _single_error("operations", "must name at least one operation")

    known = {op.value for op in OperationName}
    errors: list[ErrorDetail] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        path = f"operations[{index}]"
        if not isinstance(item, str):
            errors.append({"field": path, "message": "must be a string"})
        elif item not in known:
            allowed = ", ".join(sorted(known))
            errors.append(
                {
                    "field": path,
                    "message": f"unknown operation {item!r}; expected one of {allowed}",
                }
            )
        elif item in seen:
            errors.append({"field": path, "message": f"duplicate operation {item!r}"})
        else:
            seen.add(item)

    if errors:
        raise InvalidOperationsError(_summarize(errors), errors)
    return [str(item) for item in value]


def _parse_params_object(params_json: str | None) -> dict[str, Any]:
    if params_json is None or not params_json.strip():
        return {}
    try:
        value = json.loads(params_json)
    except json.JSONDecodeError:
        raise _single_error(
            "params", "must be a JSON object keyed by operation name"
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _single_error("params", "must be a JSON object keyed by operation name")
    return value


def _details_from_validation(name: str, exc: ValidationError) -> list[ErrorDetail]:
    details: list[ErrorDetail] = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        path = f"params.{name}.{location}" if location else f"params.{name}"
        message = str(error["msg"])
        if error["type"] == "extra_forbidden":
            message = "unknown parameter"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        details.append({"field": path, "message": message})
    return details


def _single_error(field_path: str, message: str) -> InvalidOperationsError:
    return InvalidOperationsError(
        f"{field_path} {message}.", [{"field": field_path, "message": message}]
    )


def _summarize(errors: list[ErrorDetail]) -> str:
    first = errors[0]
    text = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return f"Invalid operations request: {text}."
