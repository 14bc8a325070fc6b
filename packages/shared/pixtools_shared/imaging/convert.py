"""The jpg, png, webp and avif operations: bytes in, encoded bytes and facts out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from pixtools_shared.errors import InvalidImageError, PixToolsError
from pixtools_shared.imaging.decode import decode_image
from pixtools_shared.imaging.encode import EncodeOptions, encode_image, normalize_format
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.probe import probe_image
from pixtools_shared.imaging.resize import fit_size, resize_to
from pixtools_shared.operations import CONTENT_TYPES

log = structlog.get_logger(__name__)

_JPEG_FAMILY = frozenset({"JPEG", "MPO"})


@dataclass(frozen=True)
class EncodedImage:
    """Result of a conversion.

    `source_frames` above 1 means the source was animated or multi-page and only
    its first frame was converted.
    """

    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    source_format: str
    source_frames: int

    @property
    def first_frame_only(self) -> bool:
        return self.source_frames > 1


def convert_image(
    data: bytes,
    fmt: str,
    params: Mapping[str, Any] | None,
    limits: ImageLimits,
    options: EncodeOptions | None = None,
) -> EncodedImage:
    """Decode `data`, resize it as `params` request and encode it as `fmt`.

    `params` are the validated parameters of the operation (width, height,
    allow_upscale, quality, compress_level); missing keys take their defaults.
    Raises only PixToolsError subclasses.
    """
    key = normalize_format(fmt)
    params = params or {}
    try:
        return _convert(data, key, params, limits, options)
    except PixToolsError:
        raise
    except Exception as exc:
        # Pillow and numpy raise a wide range of types on hostile input; callers
        # get one error type with the reason instead of a crash.
        log.warning("image_convert_failed", format=key, error=repr(exc))
        raise InvalidImageError(
            f"The image could not be converted to {key}: {exc}"
        ) from exc


def _convert(
    data: bytes,
    key: str,
    params: Mapping[str, Any],
    limits: ImageLimits,
    options: EncodeOptions | None,
) -> EncodedImage:
    width = params.get("width")
    height = params.get("height")
    allow_upscale = bool(params.get("allow_upscale", False))

    info = probe_image(data, limits)
    target = fit_size(info.width, info.height, width, height, allow_upscale)
    limits.check(*target, subject="The requested output size")

    # Draft decoding is used only for JPEG, whose EXIF orientation is always in
    # the header, so the displayed size from probe_image is also what decodes.
    use_draft = info.format in _JPEG_FAMILY and target != (info.width, info.height)
    image = decode_image(data, limits, draft_box=target if use_draft else None)
    if not use_draft:
        target = fit_size(image.width, image.height, width, height, allow_upscale)

    resized = resize_to(image, target)
    encoded = encode_image(
        resized,
        key,
        params.get("quality"),
        compress_level=params.get("compress_level"),
        options=options,
    )
    log.debug(
        "image_converted",
        source_format=info.format,
        format=key,
        width=resized.width,
        height=resized.height,
        size_bytes=len(encoded),
    )
    return EncodedImage(
        data=encoded,
        content_type=CONTENT_TYPES[key],
        extension=key,
        width=resized.width,
        height=resized.height,
        source_format=info.format,
        source_frames=info.frames,
    )
