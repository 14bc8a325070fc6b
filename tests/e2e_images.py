"""Test images built with Pillow for the end-to-end tests, with known features."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, TiffImagePlugin

CAMERA_MAKE = "PixTestCam"
CAMERA_MODEL = "Model X1"

# Liberty Island: 40 deg 41' 21.12" N, 74 deg 2' 40.2" W.
GPS_LATITUDE = 40 + 41 / 60 + 21.12 / 3600
GPS_LONGITUDE = -(74 + 2 / 60 + 40.2 / 3600)

# Stored (encoded) size of the photo; EXIF orientation 6 displays it rotated
# 90 degrees clockwise, so it shows as 2000 x 3000.
PHOTO_STORED_SIZE = (3000, 2000)
PHOTO_DISPLAY_SIZE = (2000, 3000)
MARKER_SIZE = 300

ALPHA_SIZE = (256, 256)
ALPHA_FILL = (20, 60, 230)


@dataclass(frozen=True)
class SampleImage:
    filename: str
    data: bytes


def _rational(numerator: int, denominator: int) -> TiffImagePlugin.IFDRational:
    return TiffImagePlugin.IFDRational(numerator, denominator)


def build_photo_exif() -> Image.Exif:
    """EXIF with orientation 6, camera make and model, and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = CAMERA_MAKE
    exif[ExifTags.Base.Model] = CAMERA_MODEL

    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (
        _rational(40, 1),
        _rational(41, 1),
        _rational(2112, 100),
    )
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (
        _rational(74, 1),
        _rational(2, 1),
        _rational(4020, 100),
    )
    return exif


def build_photo_jpeg() -> SampleImage:
    """A 6-megapixel colour JPEG with a red square at the stored top-left corner.

    After orientation 6 is applied the square is at the displayed top-right.
    """
    width, height = PHOTO_STORED_SIZE
    generator = np.random.default_rng(7)
    pixels = np.zeros((height, width, 3), dtype=np.int16)
    pixels[..., 0] = np.linspace(0, 200, width, dtype=np.int16)[None, :]
    pixels[..., 1] = np.linspace(0, 200, height, dtype=np.int16)[:, None]
    pixels[..., 2] = 90
    pixels += generator.integers(-12, 13, size=pixels.shape, dtype=np.int16)
    pixels = np.clip(pixels, 0, 255)
    pixels[:MARKER_SIZE, :MARKER_SIZE] = (255, 0, 0)

    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=build_photo_exif().tobytes())
    return SampleImage("holiday photo.jpg", buffer.getvalue())


def build_alpha_png() -> SampleImage:
    """A 256 x 256 RGBA PNG: transparent top half, opaque blue bottom half."""
    width, height = ALPHA_SIZE
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[height // 2 :, :, :3] = ALPHA_FILL
    pixels[height // 2 :, :, 3] = 255
    # A little texture so the denoiser has something to work on.
    generator = np.random.default_rng(11)
    noise = generator.integers(0, 8, size=(height // 2, width), dtype=np.uint8)
    pixels[height // 2 :, :, 0] += noise

    image = Image.fromarray(pixels, "RGBA")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return SampleImage("logo.png", buffer.getvalue())
