from __future__ import annotations

import pytest
from PIL import Image

from pixtools_shared.errors import ImageTooLargeError, InvalidImageError
from pixtools_shared.imaging.conftest import (
    gif_header_only,
    png_header_only,
    save_bytes,
)
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.probe import probe_image
from pixtools_shared.settings import Settings


def test_probe_reads_header_facts(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGBA", (64, 48)), "PNG")
    info = probe_image(data, limits)
    assert info.format == "PNG"
    assert (info.width, info.height) == (64, 48)
    assert info.frames == 1
    assert info.mode == "RGBA"
    assert info.has_alpha is True
    assert info.animated is False


def test_probe_swaps_size_for_rotated_orientation(limits: ImageLimits) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = save_bytes(Image.new("RGB", (64, 48)), "JPEG", exif=exif)
    info = probe_image(data, limits)
    assert info.orientation == 6
    assert (info.width, info.height) == (48, 64)
    assert (info.stored_width, info.stored_height) == (64, 48)


def test_probe_counts_animation_frames(limits: ImageLimits) -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "lime", "blue")]
    data = save_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    info = probe_image(data, limits)
    assert info.frames == 3
    assert info.animated is True


@pytest.mark.parametrize(
    "data",
    [png_header_only(50_000, 50_000), gif_header_only(50_000, 50_000)],
    ids=["png", "gif"],
)
def test_pixel_bomb_rejected_from_header(data: bytes) -> None:
    assert len(data) < 200
    with pytest.raises(ImageTooLargeError) as caught:
        probe_image(data, ImageLimits(max_pixels=50_000_000, max_side=60_000))
    assert "2500000000 pixels" in caught.value.message
    assert caught.value.http_status == 413


def test_side_limit_rejected_from_header() -> None:
    data = png_header_only(30_000, 10)
    with pytest.raises(ImageTooLargeError) as caught:
        probe_image(data, ImageLimits(max_pixels=50_000_000, max_side=20_000))
    assert "at most 20000 pixels" in caught.value.message


def test_pixel_limit_boundary() -> None:
    data = png_header_only(100, 100)
    info = probe_image(data, ImageLimits(max_pixels=10_000, max_side=100))
    assert (info.width, info.height) == (100, 100)
    with pytest.raises(ImageTooLargeError):
        probe_image(data, ImageLimits(max_pixels=9_999, max_side=100))
    with pytest.raises(ImageTooLargeError):
        probe_image(data, ImageLimits(max_pixels=10_000, max_side=99))


def test_pillow_bomb_error_becomes_too_large() -> None:
    # 65535 x 65535 exceeds twice Pillow's MAX_IMAGE_PIXELS, so Pillow raises
    # DecompressionBombError inside Image.open, before our own check runs.
    data = gif_header_only(65_535, 65_535)
    generous = ImageLimits(max_pixels=10**10, max_side=70_000)
    with pytest.raises(ImageTooLargeError):
        probe_image(data, generous)


def test_zero_byte_file_is_invalid(limits: ImageLimits) -> None:
    with pytest.raises(InvalidImageError) as caught:
        probe_image(b"", limits)
    assert caught.value.message == "The file is empty (0 bytes)."
    assert caught.value.code == "invalid-image"


@pytest.mark.parametrize("keep", [8, 16, 30])
def test_cut_header_is_invalid(limits: ImageLimits, keep: int) -> None:
    data = save_bytes(Image.new("RGB", (64, 48)), "PNG")[:keep]
    with pytest.raises(InvalidImageError) as caught:
        probe_image(data, limits)
    assert "PNG" in caught.value.message


def test_jpeg_magic_with_garbage_is_invalid(limits: ImageLimits) -> None:
    with pytest.raises(InvalidImageError):
        probe_image(b"\xff\xd8\xff" + bytes(range(256)) * 4, limits)


def test_limits_reject_non_positive_values() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ImageLimits(max_pixels=0, max_side=10)


def test_limits_from_settings() -> None:
    settings = Settings(MAX_IMAGE_PIXELS=1234, MAX_IMAGE_SIDE=56)
    assert ImageLimits.from_settings(settings) == ImageLimits(1234, 56)
