"""A bare Pillow pipeline doing the same work as a PixTools operation.

It is the reference that the worker's processing time is compared with: open,
JPEG draft decoding, LANCZOS resize (with the same reducing_gap), encode with the
same encoder settings as pixtools_shared.imaging.encode. It skips what PixTools
adds: format sniffing, pixel limits, EXIF orientation, mode normalisation,
metadata stripping, ICC checks and error mapping. The metadata baseline reads
EXIF and GPS with Image.getexif() and serialises them with json.dumps.
"""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import ExifTags, Image

# Encoder settings of pixtools_shared.imaging.encode (defaults of Settings and
# operations.DEFAULT_QUALITY), repeated here so the baseline does the same work.
JPEG_QUALITY = 85
WEBP_QUALITY = 80
WEBP_METHOD = 4
AVIF_QUALITY = 60
AVIF_SPEED = 8
AVIF_THREADS = 1
PNG_COMPRESS_LEVEL = 6
REDUCING_GAP = 3.0

PILLOW_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}


def target_size(width: int, height: int, max_width: int | None) -> tuple[int, int]:
    """Size after fitting `width` into `max_width`, never upscaling."""
    if max_width is None or max_width >= width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


def convert(data: bytes, fmt: str, max_width: int | None) -> tuple[bytes, int, int]:
    """Decode, resize and encode; return the bytes and the output size."""
    image: Image.Image = Image.open(io.BytesIO(data))
    size = target_size(image.width, image.height, max_width)
    if image.format == "JPEG" and size != image.size:
        image.draft("RGB", size)
    image.load()
    icc = image.info.get("icc_profile")

    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)

    params: dict[str, Any] = {}
    if icc:
        params["icc_profile"] = icc
    if fmt == "jpg":
        if image.mode == "RGBA":
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, image).convert("RGB")
        params.update(quality=JPEG_QUALITY, optimize=True)
    elif fmt == "webp":
        params.update(quality=WEBP_QUALITY, method=WEBP_METHOD)
    elif fmt == "avif":
        params.update(quality=AVIF_QUALITY, speed=AVIF_SPEED, max_threads=AVIF_THREADS)
    elif fmt == "png":
        params.update(compress_level=PNG_COMPRESS_LEVEL)

    buffer = io.BytesIO()
    image.save(buffer, format=PILLOW_FORMATS[fmt], **params)
    return buffer.getvalue(), image.width, image.height


def read_metadata(data: bytes) -> bytes:
    """Read EXIF (IFD0, Exif, GPS) with named tags and return it as JSON bytes."""
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    document: dict[str, Any] = {
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "exif": {
            ExifTags.TAGS.get(tag, str(tag)): value for tag, value in exif.items()
        },
        "details": {
            ExifTags.TAGS.get(tag, str(tag)): value
            for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items()
        },
        "gps": {
            ExifTags.GPSTAGS.get(tag, str(tag)): value
            for tag, value in exif.get_ifd(ExifTags.IFD.GPSInfo).items()
        },
    }
    return json.dumps(document, default=str).encode("utf-8")
