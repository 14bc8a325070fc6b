"""Synthetic benchmark images built with numpy and Pillow.

The photo-like image has what makes camera JPEGs costly to process: smooth
gradients (sky, shading), sharp-edged shapes, fine periodic texture and sensor
noise. It still compresses better than real detail (2.6 MB at 12 MP, where phone
JPEGs are commonly 3 to 5 MB). The pixels are deterministic for a given seed, but
the embedded sRGB profile records its creation time, so file bytes can differ.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import ExifTags, Image, ImageCms, TiffImagePlugin

# Pixel sizes of common phone camera outputs.
PHONE_12MP = (4032, 3024)
PHONE_3MP = (2048, 1536)
ALPHA_PNG_SIZE = (2000, 1500)
SMALL_JPEG_SIZE = (640, 480)

# GPS position written into the photo's EXIF, in decimal degrees and metres.
PHOTO_LATITUDE = 52.5163
PHOTO_LONGITUDE = 13.3777
PHOTO_ALTITUDE = 34.5


@dataclass(frozen=True)
class BenchImage:
    """An encoded test image and what it is."""

    name: str
    data: bytes
    format: str
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "megapixels": round(self.megapixels, 2),
            "size_bytes": len(self.data),
        }


def synthesize_photo(
    width: int, height: int, seed: int = 0, noise_sigma: float = 4.0
) -> np.ndarray:
    """Return a photo-like RGB image as a (height, width, 3) uint8 array."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]

    # Sky above a horizon at 45 % of the height, ground below, blended smoothly.
    sky = np.array([118, 158, 218], dtype=np.float32)
    ground = np.array([96, 84, 62], dtype=np.float32)
    blend = 1.0 / (1.0 + np.exp(-(rows - 0.45) * 18.0))
    pixels = sky * (1.0 - blend[..., None]) + ground * blend[..., None]
    pixels = np.broadcast_to(pixels, (height, width, 3)).copy()

    # Soft shading: a few low-frequency waves with random phases.
    shading = np.zeros((height, width), dtype=np.float32)
    for _ in range(4):
        fx, fy = rng.uniform(0.5, 3.0, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        shading += np.sin(2 * np.pi * (fx * cols + fy * rows) + phase)
    pixels += (shading * 8.0)[..., None]

    _draw_shapes(pixels, rng)
    pixels += _texture(width, height, rng)[..., None]

    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * noise_sigma
    pixels += noise
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Multi-scale detail (foliage, gravel, fabric) as a (height, width) array.

    Random grids at 1/256, 1/32 and 1/6 of the size are upscaled bicubically and
    summed, which gives texture at several spatial frequencies like a real scene.
    """
    total = np.zeros((height, width), dtype=np.float32)
    for divisor, amplitude in ((256, 14.0), (32, 9.0), (6, 6.0)):
        grid_w = max(2, width // divisor)
        grid_h = max(2, height // divisor)
        grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32) * amplitude
        layer = Image.fromarray(grid, "F").resize(
            (width, height), Image.Resampling.BICUBIC
        )
        total += np.asarray(layer, dtype=np.float32)
    return total


def _draw_shapes(pixels: np.ndarray, rng: np.random.Generator) -> None:
    """Paint sharp-edged rectangles and discs, some with fine stripes, in place."""
    height, width, _ = pixels.shape
    shape_count = 24
    for index in range(shape_count):
        box_w = int(rng.uniform(0.05, 0.25) * width)
        box_h = int(rng.uniform(0.05, 0.25) * height)
        left = int(rng.uniform(0, width - box_w))
        top = int(rng.uniform(0.2, 1.0) * (height - box_h))
        colour = rng.uniform(20, 235, size=3).astype(np.float32)
        region = pixels[top : top + box_h, left : left + box_w]

        if index % 2 == 0:
            mask = np.ones((box_h, box_w), dtype=bool)
        else:
            yy, xx = np.ogrid[:box_h, :box_w]
            cy, cx = box_h / 2, box_w / 2
            mask = ((yy - cy) / cy) ** 2 + ((xx - cx) / cx) ** 2 <= 1.0

        fill = np.broadcast_to(colour, region.shape).copy()
        if index % 3 == 0:
            # Fine stripes (fabric, railings): high-frequency detail for the codec.
            period = rng.uniform(3.0, 9.0)
            stripes = np.sin(np.arange(box_w, dtype=np.float32) * 2 * np.pi / period)
            fill += (stripes * 30.0)[None, :, None]
        region[mask] = fill[mask]


def photo_exif(width: int, height: int) -> Image.Exif:
    """EXIF of a phone photo: camera fields, exposure, orientation 1 and GPS."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PixBench"
    exif[ExifTags.Base.Model] = "Synthetic Phone"
    exif[ExifTags.Base.Software] = "benchkit"
    exif[ExifTags.Base.DateTime] = "2024:06:01 12:30:00"
    exif[ExifTags.Base.Orientation] = 1

    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.DateTimeOriginal] = "2024:06:01 12:30:00"
    details[ExifTags.Base.ExposureTime] = TiffImagePlugin.IFDRational(1, 120)
    details[ExifTags.Base.FNumber] = TiffImagePlugin.IFDRational(18, 10)
    details[ExifTags.Base.ISOSpeedRatings] = 100
    details[ExifTags.Base.FocalLength] = TiffImagePlugin.IFDRational(42, 10)
    details[ExifTags.Base.ExifImageWidth] = width
    details[ExifTags.Base.ExifImageHeight] = height

    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = _degrees_minutes_seconds(PHOTO_LATITUDE)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = _degrees_minutes_seconds(PHOTO_LONGITUDE)
    gps[ExifTags.GPS.GPSAltitudeRef] = b"\x00"
    gps[ExifTags.GPS.GPSAltitude] = TiffImagePlugin.IFDRational(
        int(PHOTO_ALTITUDE * 10), 10
    )
    return exif


def _degrees_minutes_seconds(value: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = Fraction(round((minutes_float - minutes) * 60 * 100), 100)
    return (
        TiffImagePlugin.IFDRational(degrees, 1),
        TiffImagePlugin.IFDRational(minutes, 1),
        TiffImagePlugin.IFDRational(seconds.numerator, seconds.denominator),
    )


def srgb_profile() -> bytes:
    """Build an sRGB ICC profile, as phone JPEGs carry one."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return bytes(profile.tobytes())


def photo_jpeg(
    name: str, size: tuple[int, int], seed: int = 0, quality: int = 92
) -> BenchImage:
    """Build a photo-like JPEG with EXIF (GPS included) and an sRGB ICC profile.

    Quality 92 with 4:2:0 chroma subsampling was chosen to resemble phone camera
    output.
    """
    width, height = size
    image = Image.fromarray(synthesize_photo(width, height, seed), "RGB")
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="JPEG",
        quality=quality,
        subsampling=2,
        exif=photo_exif(width, height).tobytes(),
        icc_profile=srgb_profile(),
    )
    return BenchImage(name, buffer.getvalue(), "JPEG", width, height)


def alpha_png(name: str, size: tuple[int, int], seed: int = 1) -> BenchImage:
    """Build an RGBA PNG: a graphic with soft and fully transparent areas."""
    width, height = size
    rgb = synthesize_photo(width, height, seed, noise_sigma=1.5)

    rows = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    radius = np.sqrt(rows**2 + cols**2)
    # Opaque centre, a soft edge, and a fully transparent outer ring and corner.
    alpha = np.clip((1.15 - radius) / 0.35, 0.0, 1.0) * 255
    alpha[: height // 5, : width // 5] = 0
    rgba = np.dstack([rgb, alpha.astype(np.uint8)])

    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", compress_level=6)
    return BenchImage(name, buffer.getvalue(), "PNG", width, height)


def small_jpeg(name: str = "small-640x480", seed: int = 2) -> BenchImage:
    """Build a small photo-like JPEG (640x480, quality 85) for load tests."""
    return photo_jpeg(name, SMALL_JPEG_SIZE, seed=seed, quality=85)


def scaled_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """Scale a (width, height) pair, keeping each side at least 16 px."""
    return max(16, int(size[0] * factor)), max(16, int(size[1] * factor))
