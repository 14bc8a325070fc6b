"""Encoding of a decoded image to JPEG, PNG, WebP or AVIF.

Outputs never carry EXIF, XMP, GPS or comments. Every encoder gets an explicit
empty value for them and an image whose info dict contains at most the ICC profile.
The ICC profile is written only when its colour space matches the output (an RGB
profile on RGB output, a GRAY profile on greyscale JPEG or PNG output).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from PIL import Image, ImageColor, features

from pixtools_shared.errors import (
    ImageTooLargeError,
    InvalidImageError,
    InvalidOperationsError,
    UnsupportedFormatError,
)
from pixtools_shared.imaging.modes import icc_matches_mode, to_working_mode, with_info
from pixtools_shared.operations import DEFAULT_QUALITY

log = structlog.get_logger(__name__)

OUTPUT_FORMATS: dict[str, str] = {
    "jpg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "avif": "AVIF",
}
DEFAULT_PNG_COMPRESS_LEVEL = 6

# libwebp stores each side in 14 bits; JPEG frame headers in 16 bits.
MAX_SIDE_BY_FORMAT: dict[str, int] = {"webp": 16383, "jpg": 65535}


class EncodeSettings(Protocol):
    """The part of Settings that EncodeOptions reads."""

    JPEG_BACKGROUND: str
    AVIF_SPEED: int
    AVIF_THREADS: int


@dataclass(frozen=True)
class EncodeOptions:
    """Encoder settings that come from configuration, not from the request."""

    jpeg_background: tuple[int, int, int] = (255, 255, 255)
    avif_speed: int = 8
    avif_threads: int = 1

    @classmethod
    def from_settings(cls, settings: EncodeSettings) -> EncodeOptions:
        return cls(
            jpeg_background=parse_background(settings.JPEG_BACKGROUND),
            avif_speed=settings.AVIF_SPEED,
            avif_threads=settings.AVIF_THREADS,
        )


def parse_background(value: str) -> tuple[int, int, int]:
    """Parse a colour such as "#ffffff" or "white"; raise ValueError if invalid."""
    try:
        rgb = ImageColor.getrgb(value)
    except ValueError as exc:
        raise ValueError(
            f"JPEG_BACKGROUND must be a colour like '#ffffff', got {value!r}"
        ) from exc
    return rgb[0], rgb[1], rgb[2]


def normalize_format(fmt: str) -> str:
    """Map an output format name ("jpg", "jpeg", "PNG"...) to jpg/png/webp/avif."""
    key = fmt.strip().lower()
    if key == "jpeg":
        key = "jpg"
    if key not in OUTPUT_FORMATS:
        allowed = ", ".join(OUTPUT_FORMATS)
        raise InvalidOperationsError(
            f"Unknown output format {fmt!r}; expected one of {allowed}.",
            [{"field": "format", "message": f"must be one of {allowed}"}],
        )
    return key


def encode_image(
    image: Image.Image,
    fmt: str,
    quality: int | None = None,
    *,
    compress_level: int | None = None,
    options: EncodeOptions | None = None,
) -> bytes:
    """Encode `image` (any Pillow mode) as `fmt` and return the file bytes.

    `quality` (1-100) applies to jpg, webp and avif and defaults per format;
    `compress_level` (0-9) applies to png. `image` itself is not modified.
    """
    key = normalize_format(fmt)
    options = options or EncodeOptions()
    _check_output_size(image, key)

    working = to_working_mode(image)
    icc = working.info.get("icc_profile")
    params: dict[str, Any] = {"exif": b""}

    if key == "jpg":
        prepared = flatten_alpha(working, options.jpeg_background)
        params.update(quality=_quality(key, quality), optimize=True)
    elif key == "png":
        prepared = working
        params = {"compress_level": _compress_level(compress_level)}
    elif key == "webp":
        prepared = _to_colour(working)
        params.update(quality=_quality(key, quality), method=4, xmp=b"")
    else:
        _check_avif_available()
        prepared = working.convert("RGBA") if working.mode == "LA" else working
        params.update(
            quality=_quality(key, quality),
            speed=options.avif_speed,
            max_threads=options.avif_threads,
            xmp=b"",
        )

    if icc and icc_matches_mode(icc, prepared.mode):
        params["icc_profile"] = icc
    elif key in ("webp", "avif"):
        params["icc_profile"] = b""

    return _save(with_info(prepared, {}), key, params)


def flatten_alpha(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Composite an L/LA/RGB/RGBA image onto `background`; returns L or RGB.

    Each channel becomes round(c * a / 255 + b * (1 - a / 255)). A greyscale source
    stays greyscale when the background is grey.
    """
    if image.mode not in ("LA", "RGBA"):
        return image

    grey_background = background[0] == background[1] == background[2]
    rgba = image.convert("RGBA") if image.mode == "LA" else image
    base = Image.new("RGBA", rgba.size, (*background, 255))
    flattened = Image.alpha_composite(base, rgba).convert("RGB")
    if image.mode == "LA" and grey_background:
        flattened = flattened.convert("L")
    icc = image.info.get("icc_profile")
    if icc and icc_matches_mode(icc, flattened.mode):
        flattened.info["icc_profile"] = icc
    return flattened


def _to_colour(image: Image.Image) -> Image.Image:
    # WebP has no greyscale mode.
    if image.mode == "L":
        return image.convert("RGB")
    if image.mode == "LA":
        return image.convert("RGBA")
    return image


def _quality(key: str, quality: int | None) -> int:
    if quality is None:
        return DEFAULT_QUALITY[key]
    if isinstance(quality, bool) or not isinstance(quality, int):
        raise InvalidOperationsError(
            f"quality must be an integer, got {quality!r}.",
            [{"field": "quality", "message": "must be an integer from 1 to 100"}],
        )
    if not 1 <= quality <= 100:
        raise InvalidOperationsError(
            f"quality must be from 1 to 100, got {quality}.",
            [{"field": "quality", "message": "must be an integer from 1 to 100"}],
        )
    return quality


def _compress_level(level: int | None) -> int:
    if level is None:
        return DEFAULT_PNG_COMPRESS_LEVEL
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
        raise InvalidOperationsError(
            f"compress_level must be an integer from 0 to 9, got {level!r}.",
            [{"field": "compress_level", "message": "must be an integer from 0 to 9"}],
        )
    return level


def _check_output_size(image: Image.Image, key: str) -> None:
    max_side = MAX_SIDE_BY_FORMAT.get(key)
    if max_side is not None and max(image.size) > max_side:
        raise ImageTooLargeError(
            f"{key} output is limited to {max_side} pixels per side, but the image "
            f"is {image.width}x{image.height}; request a smaller width or height."
        )


def _check_avif_available() -> None:
    if not features.check("avif"):
        raise UnsupportedFormatError(
            "AVIF encoding is not available in this installation of Pillow.",
            detected="AVIF",
        )


def _save(image: Image.Image, key: str, params: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=OUTPUT_FORMATS[key], **params)
    except (OSError, ValueError) as exc:
        log.warning(
            "image_encode_failed",
            format=key,
            mode=image.mode,
            width=image.width,
            height=image.height,
            error=repr(exc),
        )
        raise InvalidImageError(
            f"Encoding the {image.width}x{image.height} image as {key} failed: {exc}"
        ) from exc
    return buffer.getvalue()
