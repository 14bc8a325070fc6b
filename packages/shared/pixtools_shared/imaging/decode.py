"""Decoding of untrusted image bytes into a Pillow image ready for processing.

The returned image is the first frame only, so animations and multi-page files
lose their other frames. Its pixels have the EXIF orientation applied. Its info
dict contains only the ICC profile and tRNS transparency, so no EXIF, XMP, GPS or
comment from the source can reach an encoder.
"""

from __future__ import annotations

from typing import Any

import structlog
from PIL import Image

from pixtools_shared.errors import ImageTooLargeError, InvalidImageError
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.modes import with_info
from pixtools_shared.imaging.pillow_warnings import captured_pillow_warnings
from pixtools_shared.imaging.probe import (
    ImageInfo,
    open_image,
    orientation_swaps,
    read_orientation,
)

log = structlog.get_logger(__name__)

# Pixel operation that turns each EXIF orientation into orientation 1.
ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_JPEG_FAMILY = frozenset({"JPEG", "MPO"})

# info entries that describe the pixels themselves and so survive decoding.
_KEPT_INFO_KEYS = ("icc_profile", "transparency")


def decode_image(
    data: bytes,
    limits: ImageLimits,
    draft_box: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode the first frame of `data`, upright and without metadata.

    `draft_box` is the final (displayed, after orientation) size the caller will
    resize to. For JPEG it lets libjpeg decode at 1/2, 1/4 or 1/8 scale, never
    below that size, so the result still needs an exact resize afterwards.

    Raises InvalidImageError, UnsupportedFormatError or ImageTooLargeError.
    """
    image, info = open_image(data, limits, count_frames=False)
    try:
        if draft_box is not None and info.format in _JPEG_FAMILY:
            _apply_draft(image, info, draft_box)
        _load_pixels(image, info)
        orientation = read_orientation(image)
        pixel_info: dict[str, Any] = {
            key: image.info[key] for key in _KEPT_INFO_KEYS if key in image.info
        }
        upright = apply_orientation(with_info(image, pixel_info), orientation)
    finally:
        image.close()
    return upright


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Rotate or mirror `image` so that EXIF `orientation` becomes 1."""
    method = ORIENTATION_TRANSPOSE.get(orientation)
    if method is None:
        return image
    return image.transpose(method)


def _apply_draft(image: Image.Image, info: ImageInfo, box: tuple[int, int]) -> None:
    width, height = box
    if orientation_swaps(info.orientation):
        width, height = height, width
    if width >= info.stored_width and height >= info.stored_height:
        return
    try:
        image.draft(image.mode, (width, height))
    except (OSError, ValueError) as exc:
        # Draft mode is an optimisation; a full-size decode still works.
        log.info("jpeg_draft_failed", error=repr(exc))


def _load_pixels(image: Image.Image, info: ImageInfo) -> None:
    try:
        with captured_pillow_warnings("decode"):
            image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"The {info.format} image decodes to more pixels than allowed."
        ) from exc
    except MemoryError as exc:
        log.warning("image_decode_out_of_memory", format=info.format)
        raise ImageTooLargeError(
            f"The {info.format} image needs more memory to decode than is available."
        ) from exc
    except Exception as exc:
        # Truncated data raises OSError; corrupt streams raise SyntaxError,
        # ValueError, struct.error, EOFError or ZeroDivisionError depending on the
        # plugin. Each means the pixel data cannot be read.
        log.info("image_decode_failed", format=info.format, error=repr(exc))
        raise InvalidImageError(
            f"The {info.format} image data could not be decoded; the file is "
            f"damaged or truncated ({_short_reason(exc)})."
        ) from exc


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
