"""Header-only inspection of an uploaded image.

`open_image` is the only place where Pillow reads untrusted bytes. It sniffs the
format from the content and checks it against the allow-list. Then it opens the
file with only the matching Pillow plugins and applies ImageLimits to the declared
size before any pixel is decoded.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import structlog
from PIL import Image, features

from pixtools_shared.errors import (
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedFormatError,
)
from pixtools_shared.imaging.formats import (
    ALLOWED_INPUT_FORMATS,
    PILLOW_FORMATS,
    sniff_format,
)
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.pillow_warnings import captured_pillow_warnings

log = structlog.get_logger(__name__)

ORIENTATION_TAG = 0x0112

_SUPPORTED_LIST = "JPEG, PNG, WebP, AVIF, GIF, TIFF"


@dataclass(frozen=True)
class ImageInfo:
    """Facts read from the header.

    `width` and `height` are the displayed size, after the EXIF orientation is
    applied; `stored_width` and `stored_height` are the size as encoded.
    """

    format: str
    width: int
    height: int
    frames: int
    mode: str
    orientation: int
    has_alpha: bool
    stored_width: int
    stored_height: int

    @property
    def animated(self) -> bool:
        return self.frames > 1


def probe_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Read format, size and frame count from the header without decoding pixels.

    Raises InvalidImageError, UnsupportedFormatError or ImageTooLargeError.
    """
    image, info = open_image(data, limits)
    image.close()
    return info


def open_image(
    data: bytes, limits: ImageLimits, *, count_frames: bool = True
) -> tuple[Image.Image, ImageInfo]:
    """Open `data` lazily (no pixels decoded) after the format and size checks.

    With `count_frames=False` the returned info reports 1 frame; counting GIF and
    TIFF frames reads through the whole file. The caller owns the returned image
    and should close it.
    """
    detected = _check_format(data)

    try:
        with captured_pillow_warnings("open"):
            image = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS[detected])
    except Image.DecompressionBombError as exc:
        # NOTE: Pillow raises this above 2 * Image.MAX_IMAGE_PIXELS (about 179 MP
        # in Pillow 13), so a MAX_IMAGE_PIXELS setting above that has no effect.
        log.info("image_rejected_by_pillow_limit", format=detected, error=str(exc))
        raise ImageTooLargeError(_bomb_message(detected, str(exc), limits)) from exc
    except Exception as exc:
        # Pillow raises many exception types on malformed headers (OSError,
        # SyntaxError, ValueError, struct.error, TypeError...); all mean the same.
        log.info("image_open_failed", format=detected, error=repr(exc))
        raise InvalidImageError(
            f"The file looks like {detected} but its header could not be read; "
            "it is damaged or truncated."
        ) from exc

    try:
        info = _read_info(image, limits, count_frames)
    except BaseException:
        image.close()
        raise
    return image, info


def _bomb_message(detected: str, pillow_message: str, limits: ImageLimits) -> str:
    # Pillow's message is "Image size (N pixels) exceeds limit of M pixels, ...".
    match = re.search(r"\((\d+) pixels\)", pillow_message)
    declared = f"{match.group(1)} pixels" if match else "more pixels than allowed"
    return (
        f"The {detected} image declares {declared}; the maximum is "
        f"{limits.max_pixels} pixels."
    )


def _check_format(data: bytes) -> str:
    if not data:
        raise InvalidImageError("The file is empty (0 bytes).")

    detected = sniff_format(data)
    if detected is None:
        raise UnsupportedFormatError(
            "The file is not in a recognized image format; supported formats are "
            f"{_SUPPORTED_LIST}.",
            detected=None,
        )
    if detected not in ALLOWED_INPUT_FORMATS:
        raise UnsupportedFormatError(
            f"{detected} files are not supported; supported formats are "
            f"{_SUPPORTED_LIST}.",
            detected=detected,
        )
    if detected == "AVIF" and not features.check("avif"):
        raise UnsupportedFormatError(
            "AVIF decoding is not available in this installation of Pillow.",
            detected=detected,
        )
    return detected


def _read_info(
    image: Image.Image, limits: ImageLimits, count_frames: bool
) -> ImageInfo:
    stored_width, stored_height = image.size
    if stored_width <= 0 or stored_height <= 0:
        raise InvalidImageError(
            f"The image declares an invalid size of {stored_width}x{stored_height}."
        )
    limits.check(stored_width, stored_height)

    orientation = read_orientation(image)
    width, height = stored_width, stored_height
    if orientation_swaps(orientation):
        width, height = stored_height, stored_width

    return ImageInfo(
        format=str(image.format),
        width=width,
        height=height,
        frames=_count_frames(image) if count_frames else 1,
        mode=image.mode,
        orientation=orientation,
        has_alpha=has_alpha(image),
        stored_width=stored_width,
        stored_height=stored_height,
    )


def read_orientation(image: Image.Image) -> int:
    """Return the EXIF orientation 1-8, or 1 when missing, invalid or unreadable.

    Reads the raw tags without Image.getexif(), which would decode a whole PNG
    and caches its result on the image.
    """
    try:
        with captured_pillow_warnings("orientation"):
            value = _raw_orientation(image)
    except Exception as exc:
        # Broken EXIF blocks raise anything from SyntaxError to struct.error; the
        # image itself may still be fine, so only the orientation is lost.
        log.info("exif_orientation_unreadable", error=repr(exc))
        return 1
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    return 1


def orientation_swaps(orientation: int) -> bool:
    """Tell whether an EXIF orientation (5-8) turns the image by 90 or 270 degrees,
    so that its displayed width and height are swapped."""
    return orientation in (5, 6, 7, 8)


def _raw_orientation(image: Image.Image) -> object:
    tags = getattr(image, "tag_v2", None)
    if tags is not None:
        return tags.get(ORIENTATION_TAG, 1)

    # NOTE: a PNG whose eXIf chunk follows the pixel data has no "exif" entry
    # until it is loaded, so probe_image reports orientation 1 for it, while
    # decode_image (which reads this again after loading) still applies it.
    raw = image.info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return 1
    exif = Image.Exif()
    exif.load(raw)
    return exif.get(ORIENTATION_TAG, 1)


def has_alpha(image: Image.Image) -> bool:
    """Tell whether the image carries transparency (alpha band, tRNS or palette)."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return True
    return image.info.get("transparency") is not None


def _count_frames(image: Image.Image) -> int:
    # GIF and TIFF store no frame count, so Pillow reads every frame header. A
    # 3 MB GIF of 200,000 one-pixel frames took 0.6 s on a 2-core development VM.
    try:
        frames = int(getattr(image, "n_frames", 1))
        image.seek(0)
    except Exception as exc:
        # A damaged later frame does not matter, because only the first frame is
        # ever decoded.
        log.info("frame_count_failed", format=image.format, error=repr(exc))
        return 1
    return max(frames, 1)
