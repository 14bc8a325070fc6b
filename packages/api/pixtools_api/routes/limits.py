"""GET /api/limits: the upload limits and the operations with their parameters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from PIL import features
from pydantic import BaseModel

from pixtools_api.dependencies import SettingsDep
from pixtools_shared.imaging.formats import ALLOWED_INPUT_FORMATS
from pixtools_shared.operations import OPERATIONS

router = APIRouter(prefix="/api", tags=["limits"])


class OperationPublic(BaseModel):
    name: str
    queue: str
    output_extension: str
    content_type: str
    params_schema: dict[str, Any]
    """JSON Schema of the operation's entry in `operation_params`."""


class InputFormatPublic(BaseModel):
    format: str
    content_types: list[str]
    extensions: list[str]


class LimitsPublic(BaseModel):
    max_upload_bytes: int
    max_image_pixels: int
    max_image_side: int
    input_formats: list[InputFormatPublic]
    operations: list[OperationPublic]


# Content types and file extensions of the input formats, in display order. The
# API identifies uploads by their bytes; these only help clients pick files.
INPUT_FORMAT_DETAILS: dict[str, tuple[list[str], list[str]]] = {
    "JPEG": (["image/jpeg"], ["jpg", "jpeg", "jpe"]),
    "PNG": (["image/png"], ["png"]),
    "WEBP": (["image/webp"], ["webp"]),
    "AVIF": (["image/avif"], ["avif"]),
    "GIF": (["image/gif"], ["gif"]),
    "TIFF": (["image/tiff"], ["tif", "tiff"]),
}


def list_input_formats() -> list[InputFormatPublic]:
    """Return the accepted input formats that this Pillow build can decode."""
    names = [name for name in INPUT_FORMAT_DETAILS if name in ALLOWED_INPUT_FORMATS]
    names += sorted(ALLOWED_INPUT_FORMATS - set(INPUT_FORMAT_DETAILS))
    if not features.check("avif"):
        # probe_image rejects AVIF uploads when Pillow has no AVIF codec.
        names.remove("AVIF")

    formats: list[InputFormatPublic] = []
    for name in names:
        content_types, extensions = INPUT_FORMAT_DETAILS.get(name, ([], [name.lower()]))
        formats.append(
            InputFormatPublic(
                format=name, content_types=content_types, extensions=extensions
            )
        )
    return formats


@router.get("/limits")
def read_limits(settings: SettingsDep) -> LimitsPublic:
    """Publish the limits that POST /api/process enforces."""
    operations = [
        OperationPublic(
            name=spec.name.value,
            queue=spec.queue,
            output_extension=spec.extension,
            content_type=spec.content_type,
            params_schema=spec.params_model.model_json_schema(),
        )
        for spec in OPERATIONS.values()
    ]
    return LimitsPublic(
        max_upload_bytes=settings.MAX_UPLOAD_BYTES,
        max_image_pixels=settings.MAX_IMAGE_PIXELS,
        max_image_side=settings.MAX_IMAGE_SIDE,
        input_formats=list_input_formats(),
        operations=operations,
    )
