"""Conversion of any decoded Pillow mode to one of L, LA, RGB or RGBA.

Resizing and every encoder work on these four modes. The conversions keep what
the pixels mean. 16-bit and 32-bit samples are scaled to 8 bits, so a full-range
ramp stays a full-range ramp. Transparency stored as a tRNS colour or palette
entry becomes an alpha channel. CMYK goes through its ICC profile when it has one.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import structlog
from PIL import Image, ImageCms

from pixtools_shared.errors import InvalidImageError

log = structlog.get_logger(__name__)

WORKING_MODES = frozenset({"L", "LA", "RGB", "RGBA"})

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

# Modes that Pillow converts directly and losslessly enough to RGB or RGBA.
_DIRECT_CONVERSIONS = {
    "1": "L",
    "La": "LA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "PA": "RGBA",
    "YCbCr": "RGB",
    "HSV": "RGB",
}


def icc_color_space(icc_profile: bytes | None) -> str | None:
    """Return the data colour space of an ICC profile ("RGB", "GRAY", "CMYK"...).

    Reads bytes 16-19 of the 128-byte profile header; None if the header is short.
    """
    if not icc_profile or len(icc_profile) < 128:
        return None
    return icc_profile[16:20].decode("ascii", errors="replace").strip()


def with_info(image: Image.Image, info: Mapping[str, Any]) -> Image.Image:
    """Return an Image sharing the pixels of `image` with `info` as its info dict.

    The caller's image keeps its own info, so stripping metadata never mutates it.
    """
    image.load()
    # Image._new wraps the same pixel core without copying it; Pillow 13 has no
    # public call that does this.
    fresh = image._new(image.im)
    fresh.info = dict(info.items())
    return fresh


def to_working_mode(image: Image.Image) -> Image.Image:
    """Convert `image` to L, LA, RGB or RGBA; info keeps only a matching ICC."""
    mode = image.mode
    icc = image.info.get("icc_profile")
    transparency = image.info.get("transparency")

    if mode in WORKING_MODES and transparency is None:
        converted = image
    elif mode in ("L", "RGB"):
        converted = image.convert("LA" if mode == "L" else "RGBA")
    elif mode == "P":
        palette_mode = image.palette.mode if image.palette is not None else "RGB"
        has_alpha = transparency is not None or palette_mode == "RGBA"
        converted = image.convert("RGBA" if has_alpha else "RGB")
    elif mode in _DIRECT_CONVERSIONS:
        converted = image.convert(_DIRECT_CONVERSIONS[mode])
    elif mode in _SIXTEEN_BIT_MODES or mode == "I":
        converted = _integer_to_eight_bit(image, transparency)
    elif mode == "F":
        converted = _float_to_eight_bit(image)
    elif mode == "CMYK":
        converted = cmyk_to_rgb(image, icc)
        icc = None
    elif mode == "LAB":
        converted = _lab_to_rgb(image)
        icc = None
    else:
        converted = _convert_other(image)

    keep_icc = icc if icc_matches_mode(icc, converted.mode) else None
    info = {"icc_profile": keep_icc} if keep_icc else {}
    return with_info(converted, info)


def icc_matches_mode(icc: bytes | None, mode: str) -> bool:
    """Tell whether an ICC profile describes pixels of `mode` (RGB or GRAY)."""
    space = icc_color_space(icc)
    if space == "RGB":
        return mode in ("RGB", "RGBA")
    if space == "GRAY":
        return mode in ("L", "LA")
    return False


def _integer_to_eight_bit(image: Image.Image, transparency: Any) -> Image.Image:
    # 16-bit modes use the full 0..65535 range. Mode I (32-bit signed) comes from
    # 16-bit files on older Pillow versions and from 32-bit TIFFs, and is read as
    # the same 16-bit range with values outside 0..65535 clipped.
    samples = np.asarray(image).astype(np.int64)
    clipped = np.clip(samples, 0, 65535)
    scaled = ((clipped * 255 + 32767) // 65535).astype(np.uint8)
    grey = Image.fromarray(scaled)

    if isinstance(transparency, int):
        alpha = np.where(samples == transparency, 0, 255).astype(np.uint8)
        return Image.merge("LA", (grey, Image.fromarray(alpha)))
    return grey


def _float_to_eight_bit(image: Image.Image) -> Image.Image:
    # Float samples in 0..1 are scaled by 255; any other range is stretched from
    # its minimum to its maximum. NaN and infinities become 0.
    samples = np.asarray(image).astype(np.float64)
    samples = np.where(np.isfinite(samples), samples, 0.0)
    low = float(samples.min()) if samples.size else 0.0
    high = float(samples.max()) if samples.size else 0.0
    if low >= 0.0 and high <= 1.0:
        normalized = samples
    elif high > low:
        normalized = (samples - low) / (high - low)
    else:
        normalized = np.zeros_like(samples)
    return Image.fromarray(np.rint(normalized * 255).astype(np.uint8))


def cmyk_to_rgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert CMYK to sRGB through the embedded CMYK profile, else Pillow's formula.

    Adobe JPEGs store inverted CMYK. Pillow's JPEG decoder already undoes that, so
    `image` contains plain CMYK values here.
    """
    if icc_color_space(icc_profile) == "CMYK" and icc_profile is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            target = ImageCms.createProfile("sRGB")
            # Relative colorimetric with black point compensation is the usual
            # default of print-to-screen conversion in image editors.
            converted = ImageCms.profileToProfile(
                image,
                source,
                target,
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                outputMode="RGB",
                flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            log.warning("cmyk_icc_transform_failed", error=repr(exc))
        else:
            if converted is not None:
                return converted
    return image.convert("RGB")


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    try:
        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        converted = ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        raise InvalidImageError(
            f"The LAB colour image could not be converted to RGB: {exc}"
        ) from exc
    if converted is None:
        raise InvalidImageError("The LAB colour image could not be converted to RGB.")
    return converted


def _convert_other(image: Image.Image) -> Image.Image:
    target = "RGBA" if "A" in image.mode else "RGB"
    try:
        return image.convert(target)
    except (ValueError, OSError) as exc:
        raise InvalidImageError(
            f"Images in Pillow mode {image.mode} cannot be converted: {exc}"
        ) from exc
