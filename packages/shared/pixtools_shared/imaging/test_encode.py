from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms
from PIL.TiffImagePlugin import IFDRational

from pixtools_shared.errors import ImageTooLargeError, InvalidOperationsError
from pixtools_shared.imaging.conftest import (
    constant_cmyk_profile,
    png_sixteen_bit_rgb_ramp,
    reopen,
    save_bytes,
)
from pixtools_shared.imaging.convert import convert_image
from pixtools_shared.imaging.decode import decode_image
from pixtools_shared.imaging.encode import (
    EncodeOptions,
    encode_image,
    flatten_alpha,
    parse_background,
)
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.modes import to_working_mode
from pixtools_shared.settings import Settings

FORMATS = ["jpg", "png", "webp", "avif"]
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
LAB = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


def blended(colour: int, alpha: int, background: int = 255) -> int:
    """Expected channel value of `colour` at `alpha` over `background`."""
    return round(colour * alpha / 255 + background * (1 - alpha / 255))


def close(pixel: Any, expected: tuple[int, ...], tolerance: int) -> bool:
    values = pixel if isinstance(pixel, tuple) else (pixel,)
    return all(abs(a - b) <= tolerance for a, b in zip(values, expected, strict=True))


def transparent_sources() -> dict[str, Image.Image]:
    rgba = Image.new("RGBA", (64, 48), (200, 40, 0, 128))
    la = Image.new("LA", (64, 48), (40, 128))
    palette = Image.new("P", (64, 48), 1)
    palette.putpalette([0, 0, 0, 200, 40, 0])
    palette.info["transparency"] = 1
    pa = Image.new("RGBA", (64, 48), (200, 40, 0, 128)).convert("PA")
    return {"RGBA": rgba, "LA": la, "P": palette, "PA": pa}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("RGBA", (blended(200, 128), blended(40, 128), blended(0, 128))),
        ("LA", (blended(40, 128),)),
        ("P", (255, 255, 255)),
    ],
)
def test_flatten_alpha_exact(mode: str, expected: tuple[int, ...]) -> None:
    working = to_working_mode(transparent_sources()[mode])
    flat = flatten_alpha(working, (255, 255, 255))
    assert flat.mode == ("L" if mode == "LA" else "RGB")
    pixel = flat.getpixel((10, 10))
    assert (pixel if isinstance(pixel, tuple) else (pixel,)) == expected


def test_flatten_alpha_coloured_background() -> None:
    working = to_working_mode(Image.new("LA", (8, 8), (40, 128)))
    flat = flatten_alpha(working, (0, 0, 255))
    assert flat.mode == "RGB"
    assert flat.getpixel((1, 1)) == (
        blended(40, 128, 0),
        blended(40, 128, 0),
        blended(40, 128, 255),
    )


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "PA"])
def test_jpeg_composites_onto_white(mode: str) -> None:
    source = transparent_sources()[mode]
    output = reopen(encode_image(source, "jpg", 95))
    assert output.mode in ("RGB", "L")
    expected_rgb = {
        "RGBA": (blended(200, 128), blended(40, 128), blended(0, 128)),
        "LA": (blended(40, 128),),
        "P": (255, 255, 255),
        "PA": (blended(200, 128), blended(40, 128), blended(0, 128)),
    }[mode]
    assert close(output.getpixel((10, 10)), expected_rgb, tolerance=3)


def test_jpeg_background_setting_used() -> None:
    options = EncodeOptions(jpeg_background=(0, 0, 0))
    source = Image.new("RGBA", (64, 48), (255, 255, 255, 0))
    output = reopen(encode_image(source, "jpg", 95, options=options))
    assert close(output.getpixel((10, 10)), (0, 0, 0), tolerance=2)


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_alpha_kept_for_png_webp_avif(fmt: str) -> None:
    source = Image.new("RGBA", (64, 48), (200, 40, 0, 255))
    source.paste((0, 0, 0, 0), (0, 0, 32, 48))
    output = reopen(encode_image(source, fmt, 90))
    assert output.mode == "RGBA"
    left = output.getpixel((8, 24))
    right = output.getpixel((56, 24))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert left[3] == 0
    assert right[3] == 255


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_palette_transparency_kept(fmt: str) -> None:
    output = reopen(encode_image(transparent_sources()["P"], fmt))
    pixel = output.getpixel((5, 5))
    assert isinstance(pixel, tuple)
    assert pixel[3] == 0


def sixteen_bit_ramp(mode: str) -> Image.Image:
    values = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(1, 256)
    if mode == "I;16B":
        return Image.fromarray(values.astype(">u2"))
    if mode == "I":
        return Image.fromarray(values.astype(np.int32))
    return Image.fromarray(values)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_sixteen_bit_ramp_scaled(mode: str) -> None:
    source = sixteen_bit_ramp(mode)
    assert source.mode == mode
    output = reopen(encode_image(source, "png"))
    assert output.mode == "L"
    row = list(np.asarray(output)[0])
    assert row[0] == 0
    assert row[-1] == 255
    assert row == sorted(row)
    assert len(set(row)) == 256


def test_sixteen_bit_rgb_png_ramp(limits: ImageLimits) -> None:
    data = png_sixteen_bit_rgb_ramp()
    result = convert_image(data, "png", {}, limits)
    output = reopen(result.data)
    assert output.mode == "RGB"
    pixels = [output.getpixel((x, 0)) for x in range(256)]
    assert pixels[0] == (0, 0, 0)
    assert pixels[-1] == (255, 255, 255)
    assert pixels == [(value, value, value) for value in range(256)]


def test_sixteen_bit_values_exact() -> None:
    source = Image.fromarray(np.array([[0, 257, 32768, 65535]], dtype=np.uint16))
    working = to_working_mode(source)
    assert list(np.asarray(working)[0]) == [0, 1, 128, 255]


def test_sixteen_bit_transparency_becomes_alpha() -> None:
    source = Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.uint16))
    source.info["transparency"] = 1000
    working = to_working_mode(source)
    assert working.mode == "LA"
    assert [working.getpixel((x, 0)) for x in range(3)] == [
        (0, 255),
        (4, 0),
        (255, 255),
    ]


def test_float_image_scaled() -> None:
    source = Image.fromarray(
        np.array([[0.0, 0.5, 1.0, float("nan")]], dtype=np.float32)
    )
    working = to_working_mode(source)
    assert list(np.asarray(working)[0]) == [0, 128, 255, 0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cmyk_converted_to_rgb(fmt: str) -> None:
    cyan = Image.new("CMYK", (64, 48), (255, 0, 0, 0))
    output = reopen(encode_image(cyan, fmt, 95))
    assert output.mode == "RGB"
    assert close(output.getpixel((10, 10)), (0, 255, 255), tolerance=6)


def test_adobe_cmyk_jpeg_not_inverted() -> None:
    # Pillow writes CMYK JPEGs with an Adobe marker and inverted samples.
    source = Image.new("CMYK", (64, 48), (0, 255, 0, 0))
    data = save_bytes(source, "JPEG", quality=95)
    decoded = decode_image(data, ImageLimits())
    assert decoded.mode == "CMYK"
    output = reopen(encode_image(decoded, "png"))
    assert close(output.getpixel((10, 10)), (255, 0, 255), tolerance=4)


def test_cmyk_converted_through_icc_profile() -> None:
    # The profile maps every CMYK value to sRGB red, while Pillow's formula would
    # turn this cyan into (0, 255, 255), so red proves the profile was used.
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    cyan.info["icc_profile"] = constant_cmyk_profile((54.3, 80.8, 69.9))
    output = reopen(encode_image(cyan, "png"))
    assert close(output.getpixel((1, 1)), (255, 0, 0), tolerance=4)
    assert "icc_profile" not in output.info


def test_cmyk_jpeg_with_icc_profile(limits: ImageLimits) -> None:
    icc = constant_cmyk_profile((54.3, 80.8, 69.9))
    source = Image.new("CMYK", (64, 48), (255, 0, 0, 0))
    data = save_bytes(source, "JPEG", quality=95, icc_profile=icc)
    result = convert_image(data, "png", {}, limits)
    output = reopen(result.data)
    assert output.mode == "RGB"
    assert close(output.getpixel((10, 10)), (255, 0, 0), tolerance=4)


def test_cmyk_with_bad_icc_falls_back() -> None:
    image = Image.new("CMYK", (8, 8), (0, 0, 0, 255))
    image.info["icc_profile"] = SRGB[:16] + b"CMYK" + SRGB[20:]
    output = reopen(encode_image(image, "png"))
    assert output.getpixel((1, 1)) == (0, 0, 0)
    assert "icc_profile" not in output.info


@pytest.mark.parametrize("fmt", FORMATS)
def test_rgb_icc_kept_on_rgb_output(fmt: str) -> None:
    image = Image.new("RGB", (64, 48), (10, 20, 30))
    image.info["icc_profile"] = SRGB
    output = reopen(encode_image(image, fmt))
    assert output.info.get("icc_profile") == SRGB


@pytest.mark.parametrize("fmt", FORMATS)
def test_mismatched_icc_dropped(fmt: str) -> None:
    image = Image.new("RGB", (64, 48), (10, 20, 30))
    image.info["icc_profile"] = LAB
    output = reopen(encode_image(image, fmt))
    assert not output.info.get("icc_profile")


def test_rgb_icc_dropped_on_grey_output() -> None:
    image = Image.new("L", (64, 48), 100)
    image.info["icc_profile"] = SRGB
    output = reopen(encode_image(image, "jpg"))
    assert output.mode == "L"
    assert not output.info.get("icc_profile")


def source_with_metadata() -> Image.Image:
    image = Image.new("RGB", (64, 48), (10, 20, 30))
    exif = Image.Exif()
    exif[0x010F] = "TestMake"
    exif[0x0112] = 6
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (IFDRational(51, 1), IFDRational(30, 1), IFDRational(36, 1))
    image.info["exif"] = exif.tobytes()
    image.info["xmp"] = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>private</x:xmpmeta>"
    image.info["comment"] = b"private comment"
    return image


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_exif_xmp_gps_in_output(fmt: str) -> None:
    data = encode_image(source_with_metadata(), fmt)
    output = reopen(data)
    assert dict(output.getexif()) == {}
    assert output.getexif().get_ifd(0x8825) == {}
    assert "xmp" not in output.info
    assert "exif" not in output.info
    assert "comment" not in output.info
    assert b"TestMake" not in data
    assert b"private" not in data
    assert b"Exif\x00\x00" not in data


def test_input_image_info_not_modified() -> None:
    image = source_with_metadata()
    before = dict(image.info)
    encode_image(image, "jpg")
    assert image.info == before


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "CMYK"])
def test_every_mode_to_every_format(fmt: str, mode: str) -> None:
    base = Image.new("RGBA", (64, 48), (200, 100, 50, 255))
    if mode == "I;16":
        image = Image.fromarray(np.full((48, 64), 30000, dtype=np.uint16))
    elif mode == "P":
        image = base.convert("RGB").convert("P")
    else:
        image = base.convert(mode)
    output = reopen(encode_image(image, fmt))
    assert output.size == (64, 48)
    grey_input = mode in ("1", "L", "LA", "I;16")
    expected_modes = {
        "jpg": {"L"} if grey_input else {"RGB"},
        "png": {"L", "LA"} if grey_input else {"RGB", "RGBA"},
        "webp": {"RGB", "RGBA"},
        "avif": {"L", "RGB", "RGBA"},
    }[fmt]
    assert output.mode in expected_modes


@pytest.mark.parametrize("fmt", ["jpg", "webp", "avif"])
def test_quality_range(fmt: str) -> None:
    noisy = Image.effect_noise((64, 48), 80).convert("RGB")
    low = encode_image(noisy, fmt, 1)
    high = encode_image(noisy, fmt, 100)
    assert reopen(low).size == (64, 48)
    assert reopen(high).size == (64, 48)
    assert len(low) < len(high)


@pytest.mark.parametrize("quality", [0, 101, -5, True, 50.5])
def test_quality_out_of_range_rejected(quality: Any) -> None:
    with pytest.raises(InvalidOperationsError) as caught:
        encode_image(Image.new("RGB", (8, 8)), "jpg", quality)
    assert caught.value.details[0]["field"] == "quality"


@pytest.mark.parametrize("level", [-1, 10])
def test_png_compress_level_rejected(level: int) -> None:
    with pytest.raises(InvalidOperationsError):
        encode_image(Image.new("RGB", (8, 8)), "png", compress_level=level)


def test_png_compress_level_changes_size() -> None:
    image = Image.new("RGB", (64, 48), (1, 2, 3))
    stored = encode_image(image, "png", compress_level=0)
    packed = encode_image(image, "png", compress_level=9)
    assert len(packed) < len(stored)
    assert reopen(stored).tobytes() == reopen(packed).tobytes()


def test_unknown_format_rejected() -> None:
    with pytest.raises(InvalidOperationsError, match="Unknown output format"):
        encode_image(Image.new("RGB", (8, 8)), "bmp")


def test_jpeg_alias_accepted() -> None:
    assert reopen(encode_image(Image.new("RGB", (8, 8)), "JPEG")).format == "JPEG"


def test_webp_side_limit() -> None:
    wide = Image.new("L", (16_384, 1))
    with pytest.raises(ImageTooLargeError, match="16383"):
        encode_image(wide, "webp")


def test_avif_speed_and_threads_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real_save = Image.Image.save

    def recording_save(
        self: Image.Image, fp: Any, format: Any = None, **params: Any
    ) -> None:
        calls.append(params)
        real_save(self, fp, format, **params)

    monkeypatch.setattr(Image.Image, "save", recording_save)
    options = EncodeOptions(avif_speed=9, avif_threads=2)
    data = encode_image(Image.new("RGB", (16, 16)), "avif", 50, options=options)
    assert reopen(data).format == "AVIF"
    assert calls[0]["speed"] == 9
    assert calls[0]["max_threads"] == 2
    assert calls[0]["quality"] == 50


def test_encode_options_from_settings() -> None:
    settings = Settings(JPEG_BACKGROUND="#102030", AVIF_SPEED=6, AVIF_THREADS=3)
    assert EncodeOptions.from_settings(settings) == EncodeOptions((16, 32, 48), 6, 3)


def test_parse_background_rejects_junk() -> None:
    assert parse_background("white") == (255, 255, 255)
    with pytest.raises(ValueError, match="JPEG_BACKGROUND"):
        parse_background("not-a-colour")
