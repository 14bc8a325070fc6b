from __future__ import annotations

import pytest
from PIL import Image

from pixtools_shared.errors import (
    ImageTooLargeError,
    InvalidImageError,
    PixToolsError,
    UnsupportedFormatError,
)
from pixtools_shared.imaging.conftest import gif_header_only, reopen, save_bytes
from pixtools_shared.imaging.convert import convert_image
from pixtools_shared.imaging.limits import ImageLimits

RED = (255, 0, 0)
BLUE = (0, 0, 255)


@pytest.mark.parametrize(
    ("fmt", "content_type", "pillow_format"),
    [
        ("jpg", "image/jpeg", "JPEG"),
        ("png", "image/png", "PNG"),
        ("webp", "image/webp", "WEBP"),
        ("avif", "image/avif", "AVIF"),
    ],
)
def test_convert_each_format(
    limits: ImageLimits, fmt: str, content_type: str, pillow_format: str
) -> None:
    data = save_bytes(Image.new("RGB", (64, 48), (10, 200, 30)), "PNG")
    result = convert_image(data, fmt, {"width": 32}, limits)
    assert result.content_type == content_type
    assert result.extension == fmt
    assert (result.width, result.height) == (32, 24)
    assert result.source_format == "PNG"
    assert result.source_frames == 1
    assert result.first_frame_only is False
    output = reopen(result.data)
    assert output.format == pillow_format
    assert output.size == (32, 24)


def test_convert_defaults_without_params(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGB", (64, 48)), "PNG")
    result = convert_image(data, "jpg", None, limits)
    assert (result.width, result.height) == (64, 48)


def test_convert_no_upscale_unless_allowed(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGB", (64, 48)), "PNG")
    unscaled = convert_image(data, "png", {"width": 128}, limits)
    grown = convert_image(data, "png", {"width": 128, "allow_upscale": True}, limits)
    assert (unscaled.width, unscaled.height) == (64, 48)
    assert (grown.width, grown.height) == (128, 96)
    assert reopen(grown.data).size == (128, 96)


def test_convert_box_keeps_aspect(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGB", (64, 48)), "PNG")
    result = convert_image(data, "webp", {"width": 40, "height": 40}, limits)
    assert (result.width, result.height) == (40, 30)


def test_convert_jpeg_draft_then_exact_size(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGB", (1000, 750), (90, 90, 90)), "JPEG")
    result = convert_image(data, "png", {"width": 100}, limits)
    assert (result.width, result.height) == (100, 75)
    assert reopen(result.data).size == (100, 75)


def test_convert_applies_orientation_once(limits: ImageLimits) -> None:
    stored = Image.new("RGB", (4, 3), (128, 128, 128))
    stored.putpixel((0, 0), RED)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = save_bytes(stored, "PNG", exif=exif)
    for fmt in ("png", "webp"):
        result = convert_image(data, fmt, {}, limits)
        output = reopen(result.data)
        assert output.size == (3, 4)
        assert output.getexif().get(0x0112) is None
    lossless = reopen(convert_image(data, "png", {}, limits).data)
    assert lossless.getpixel((2, 0)) == RED


def test_convert_rotated_jpeg_with_resize(limits: ImageLimits) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    data = save_bytes(Image.new("RGB", (800, 400)), "JPEG", exif=exif)
    result = convert_image(data, "jpg", {"height": 200}, limits)
    assert (result.width, result.height) == (100, 200)
    output = reopen(result.data)
    assert output.size == (100, 200)
    assert dict(output.getexif()) == {}


def animated(fmt: str) -> bytes:
    colours = (RED, BLUE, (0, 255, 0))
    frames = [Image.new("RGB", (64, 48), colour) for colour in colours]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    return save_bytes(frames[0], fmt, save_all=True, append_images=frames[1:], **extra)


@pytest.mark.parametrize("source_format", ["GIF", "WEBP", "PNG"])
def test_convert_animated_keeps_first_frame(
    limits: ImageLimits, source_format: str
) -> None:
    result = convert_image(animated(source_format), "png", {}, limits)
    assert result.source_frames == 3
    assert result.first_frame_only is True
    output = reopen(result.data)
    assert getattr(output, "n_frames", 1) == 1
    assert output.convert("RGB").getpixel((10, 10)) == RED


def test_convert_mpo_first_frame(limits: ImageLimits) -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in (RED, BLUE)]
    data = save_bytes(frames[0], "MPO", save_all=True, append_images=frames[1:])
    result = convert_image(data, "png", {}, limits)
    assert result.source_format == "MPO"
    assert result.source_frames == 2
    pixel = reopen(result.data).getpixel((10, 10))
    assert isinstance(pixel, tuple)
    assert pixel[0] > 200
    assert pixel[2] < 50


def test_convert_output_size_limit(limits: ImageLimits) -> None:
    data = save_bytes(Image.new("RGB", (64, 48)), "PNG")
    tight = ImageLimits(max_pixels=10_000, max_side=1_000)
    with pytest.raises(ImageTooLargeError, match="requested output size"):
        convert_image(data, "png", {"width": 900, "allow_upscale": True}, tight)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", InvalidImageError),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, InvalidImageError),
        (b"\xff\xd8\xff\xe0garbage garbage", InvalidImageError),
        (bytes(range(256)), UnsupportedFormatError),
        (b"%PDF-1.7\n", UnsupportedFormatError),
        (gif_header_only(50_000, 50_000), ImageTooLargeError),
    ],
    ids=["empty", "png-magic-only", "jpeg-garbage", "binary", "pdf", "bomb"],
)
def test_convert_bad_inputs(
    limits: ImageLimits, data: bytes, error: type[PixToolsError]
) -> None:
    for fmt in ("jpg", "png"):
        with pytest.raises(error):
            convert_image(data, fmt, {}, limits)


def test_convert_truncated_file(limits: ImageLimits) -> None:
    data = save_bytes(Image.effect_noise((64, 48), 60).convert("RGB"), "PNG")
    with pytest.raises(InvalidImageError, match="damaged or truncated"):
        convert_image(data[:-200], "webp", {}, limits)
