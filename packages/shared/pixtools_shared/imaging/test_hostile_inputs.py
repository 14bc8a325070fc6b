"""Damaged files of every input format must fail with PixToolsError or succeed."""

from __future__ import annotations

import json
import random

import pytest
from PIL import Image

from pixtools_shared.errors import PixToolsError
from pixtools_shared.imaging.conftest import reopen, save_bytes
from pixtools_shared.imaging.convert import convert_image
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.metadata import extract_metadata

SOURCE_FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "AVIF", "TIFF", "MPO"]


def sample(fmt: str) -> bytes:
    image = Image.effect_noise((32, 24), 50).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Make"
    if fmt in ("GIF",):
        return save_bytes(image, fmt, save_all=True, append_images=[image.rotate(90)])
    return save_bytes(image, fmt, exif=exif)


def damaged_variants(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    variants = [data[:cut] for cut in (3, 12, 40, len(data) // 2, len(data) - 1)]
    for _ in range(12):
        corrupted = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(corrupted))
            corrupted[position] = rng.randrange(256)
        variants.append(bytes(corrupted))
    return variants


def run_all_operations(data: bytes, limits: ImageLimits) -> None:
    try:
        result = convert_image(data, "png", {"width": 16}, limits)
    except PixToolsError:
        pass
    else:
        assert reopen(result.data).size == (result.width, result.height)
    try:
        document = extract_metadata(data, limits)
    except PixToolsError:
        pass
    else:
        json.dumps(document, allow_nan=False)


@pytest.mark.parametrize("fmt", SOURCE_FORMATS)
def test_damaged_files_raise_only_pixtools_errors(
    limits: ImageLimits, fmt: str
) -> None:
    data = sample(fmt)
    for variant in damaged_variants(data, seed=len(fmt)):
        run_all_operations(variant, limits)


def test_undamaged_samples_convert(limits: ImageLimits) -> None:
    for fmt in SOURCE_FORMATS:
        result = convert_image(sample(fmt), "png", {}, limits)
        expected = (32, 24) if fmt == "GIF" else (24, 32)
        assert (result.width, result.height) == expected, fmt
