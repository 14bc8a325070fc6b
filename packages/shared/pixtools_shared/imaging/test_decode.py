from __future__ import annotations

import pytest
from PIL import Image, ImageCms
from PIL.TiffImagePlugin import IFDRational

from pixtools_shared.errors import ImageTooLargeError, InvalidImageError
from pixtools_shared.imaging.conftest import png_header_only, save_bytes
from pixtools_shared.imaging.decode import decode_image
from pixtools_shared.imaging.limits import ImageLimits

RED = (255, 0, 0)
GREEN = (0, 255, 0)
GREY = (128, 128, 128)

# Stored image 4x3 with RED at stored (0, 0) and GREEN at stored (1, 0). For each
# EXIF orientation: displayed size, displayed RED position, displayed GREEN
# position, worked out from the EXIF definition of where the 0th row and 0th
# column of the stored image appear.
ORIENTATION_CASES = [
    (1, (4, 3), (0, 0), (1, 0)),
    (2, (4, 3), (3, 0), (2, 0)),
    (3, (4, 3), (3, 2), (2, 2)),
    (4, (4, 3), (0, 2), (1, 2)),
    (5, (3, 4), (0, 0), (0, 1)),
    (6, (3, 4), (2, 0), (2, 1)),
    (7, (3, 4), (2, 3), (2, 2)),
    (8, (3, 4), (0, 3), (0, 2)),
]


def marker_image() -> Image.Image:
    image = Image.new("RGB", (4, 3), GREY)
    image.putpixel((0, 0), RED)
    image.putpixel((1, 0), GREEN)
    return image


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestMake"
    return exif


@pytest.mark.parametrize(("orientation", "size", "red", "green"), ORIENTATION_CASES)
def test_orientation_applied_to_pixels(
    limits: ImageLimits,
    orientation: int,
    size: tuple[int, int],
    red: tuple[int, int],
    green: tuple[int, int],
) -> None:
    data = save_bytes(marker_image(), "PNG", exif=exif_with_orientation(orientation))
    image = decode_image(data, limits)
    assert image.size == size
    assert image.getpixel(red) == RED
    assert image.getpixel(green) == GREEN
    grey_pixels = [
        (x, y)
        for x in range(size[0])
        for y in range(size[1])
        if image.getpixel((x, y)) == GREY
    ]
    assert len(grey_pixels) == 10


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_tag_dropped(limits: ImageLimits, orientation: int) -> None:
    data = save_bytes(marker_image(), "PNG", exif=exif_with_orientation(orientation))
    image = decode_image(data, limits)
    assert "exif" not in image.info
    assert dict(image.getexif()) == {}


@pytest.mark.parametrize(("orientation", "size", "red", "green"), ORIENTATION_CASES)
def test_jpeg_orientation_blocks(
    limits: ImageLimits,
    orientation: int,
    size: tuple[int, int],
    red: tuple[int, int],
    green: tuple[int, int],
) -> None:
    # JPEG is lossy, so each marker is a 16x16 block and its centre is compared.
    stored = marker_image().resize((64, 48), Image.Resampling.NEAREST)
    data = save_bytes(
        stored, "JPEG", quality=95, exif=exif_with_orientation(orientation)
    )
    image = decode_image(data, limits)
    assert image.size == (size[0] * 16, size[1] * 16)
    for (x, y), expected in ((red, RED), (green, GREEN)):
        pixel = image.getpixel((x * 16 + 8, y * 16 + 8))
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) <= 8 for a, b in zip(pixel, expected, strict=True))


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_invalid_orientation_value_ignored(limits: ImageLimits, value: int) -> None:
    data = save_bytes(marker_image(), "PNG", exif=exif_with_orientation(value))
    image = decode_image(data, limits)
    assert image.size == (4, 3)
    assert image.getpixel((0, 0)) == RED


def test_broken_exif_still_decodes(limits: ImageLimits) -> None:
    junk = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x01" * 7
    data = save_bytes(marker_image(), "JPEG", quality=95, exif=junk)
    image = decode_image(data, limits)
    assert image.size == (4, 3)


def test_zero_denominator_exif_still_decodes(limits: ImageLimits) -> None:
    exif = Image.Exif()
    exif[0x011A] = IFDRational(72, 0)
    exif[0x0112] = 3
    data = save_bytes(marker_image(), "PNG", exif=exif)
    image = decode_image(data, limits)
    assert image.getpixel((3, 2)) == RED


def test_metadata_stripped_but_icc_kept(limits: ImageLimits) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = save_bytes(
        marker_image(),
        "JPEG",
        exif=exif_with_orientation(1),
        icc_profile=icc,
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>",
        comment=b"secret",
    )
    image = decode_image(data, limits)
    assert set(image.info) == {"icc_profile"}
    assert image.info["icc_profile"] == icc


def test_png_transparency_kept(limits: ImageLimits) -> None:
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    data = save_bytes(palette, "PNG", transparency=1)
    image = decode_image(data, limits)
    assert image.mode == "P"
    assert image.info["transparency"] == 1


def test_first_frame_of_animated_gif(limits: ImageLimits) -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in (RED, GREEN)]
    data = save_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image = decode_image(data, limits)
    assert image.convert("RGB").getpixel((8, 8)) == RED


def test_first_frame_of_animated_webp(limits: ImageLimits) -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in (GREEN, RED)]
    data = save_bytes(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True
    )
    image = decode_image(data, limits)
    assert image.convert("RGB").getpixel((8, 8)) == GREEN


def test_jpeg_draft_decodes_reduced(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGB", (512, 384), GREY), "JPEG")
    full = decode_image(data, limits)
    drafted = decode_image(data, limits, draft_box=(64, 48))
    assert full.size == (512, 384)
    assert drafted.size == (64, 48)


def test_jpeg_draft_never_below_box(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGB", (512, 384), GREY), "JPEG")
    drafted = decode_image(data, limits, draft_box=(100, 75))
    # 1/4 scale gives 128x96; 1/8 (64x48) would be smaller than the box.
    assert drafted.size == (128, 96)


def test_jpeg_draft_respects_rotation(limits: ImageLimits) -> None:
    data = save_bytes(
        Image.new("RGB", (512, 256), GREY), "JPEG", exif=exif_with_orientation(6)
    )
    # Displayed 256x512; a 32x64 box allows 1/8 scale of the stored 512x256.
    drafted = decode_image(data, limits, draft_box=(32, 64))
    assert drafted.size == (32, 64)


def test_draft_box_ignored_for_png(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGB", (64, 48), GREY), "PNG")
    assert decode_image(data, limits, draft_box=(8, 6)).size == (64, 48)


def test_truncated_png_is_invalid(limits: ImageLimits) -> None:
    noisy = Image.effect_noise((64, 48), 64).convert("RGB")
    data = save_bytes(noisy, "PNG")
    with pytest.raises(InvalidImageError) as caught:
        decode_image(data[: len(data) // 2], limits)
    assert "damaged or truncated" in caught.value.message


def test_truncated_jpeg_is_invalid(limits: ImageLimits) -> None:
    noisy = Image.effect_noise((64, 48), 64).convert("RGB")
    data = save_bytes(noisy, "JPEG")
    with pytest.raises(InvalidImageError):
        decode_image(data[: len(data) // 2], limits)


def test_zero_bytes_is_invalid(limits: ImageLimits) -> None:
    with pytest.raises(InvalidImageError):
        decode_image(b"", limits)


def test_bomb_rejected_before_decode(limits: ImageLimits) -> None:
    with pytest.raises(ImageTooLargeError):
        decode_image(png_header_only(40_000, 40_000), limits)
