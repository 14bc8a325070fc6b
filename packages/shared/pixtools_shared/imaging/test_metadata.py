from __future__ import annotations

import json
import struct

import pytest
from PIL import Image, ImageCms, PngImagePlugin
from PIL.TiffImagePlugin import IFDRational

from pixtools_shared.errors import ImageTooLargeError, InvalidImageError
from pixtools_shared.imaging.conftest import png_header_only, reopen, save_bytes
from pixtools_shared.imaging.convert import convert_image
from pixtools_shared.imaging.gps import gps_to_decimal
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.metadata import extract_metadata

GPS_IFD = 0x8825
EXIF_IFD = 0x8769


def rational(numerator: int, denominator: int) -> IFDRational:
    return IFDRational(numerator, denominator)


def gps_exif(
    latitude_ref: str = "S",
    longitude_ref: str = "W",
    altitude_ref: int = 1,
) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TestMake"
    exif[0x0110] = "Model\x00 with NUL"
    exif[0x011A] = rational(300, 1)
    exif[0x011B] = rational(72, 0)
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = latitude_ref
    gps[2] = (rational(51, 1), rational(30, 1), rational(36, 1))
    gps[3] = longitude_ref
    gps[4] = (rational(0, 1), rational(7, 1), rational(3960, 100))
    gps[5] = altitude_ref
    gps[6] = rational(2551, 10)
    sub = exif.get_ifd(EXIF_IFD)
    sub[0x829A] = rational(1, 250)  # ExposureTime
    sub[0x9000] = b"0232"  # ExifVersion
    sub[0x9286] = b"ASCII\x00\x00\x00hello comment"  # UserComment
    sub[0x9101] = b"\x01\x02\x03\x00"  # ComponentsConfiguration
    return exif


def jpeg_with(exif: Image.Exif, **params: object) -> bytes:
    return save_bytes(
        Image.new("RGB", (64, 48), (9, 9, 9)), "JPEG", exif=exif, **params
    )


def test_gps_round_trip_south_west(limits: ImageLimits) -> None:
    document = extract_metadata(jpeg_with(gps_exif()), limits)
    assert document["gps"] == {
        "latitude": -51.51,
        "longitude": -0.1276667,
        "altitude": -255.1,
    }


def test_gps_round_trip_north_east(limits: ImageLimits) -> None:
    exif = gps_exif(latitude_ref="N", longitude_ref="E", altitude_ref=0)
    document = extract_metadata(jpeg_with(exif), limits)
    assert document["gps"] == {
        "latitude": 51.51,
        "longitude": 0.1276667,
        "altitude": 255.1,
    }


def test_exif_named_tags_and_sub_ifds(limits: ImageLimits) -> None:
    document = extract_metadata(jpeg_with(gps_exif()), limits)
    exif = document["exif"]
    assert exif["IFD0"]["Make"] == "TestMake"
    assert exif["IFD0"]["Model"] == "Model with NUL"
    assert exif["IFD0"]["XResolution"] == 300.0
    assert exif["IFD0"]["YResolution"] is None
    assert "ExifOffset" not in exif["IFD0"]
    assert "GPSInfo" not in exif["IFD0"]
    assert exif["Exif"]["ExposureTime"] == 0.004
    assert exif["Exif"]["ExifVersion"] == "0232"
    assert exif["Exif"]["UserComment"] == "hello comment"
    assert exif["Exif"]["ComponentsConfiguration"] == "hex:01020300"
    assert exif["GPS"]["GPSLatitudeRef"] == "S"
    assert exif["GPS"]["GPSLatitude"] == [51.0, 30.0, 36.0]


def test_metadata_is_strict_json(limits: ImageLimits) -> None:
    document = extract_metadata(jpeg_with(gps_exif()), limits)
    text = json.dumps(document, allow_nan=False)
    assert "\\u0000" not in text
    assert json.loads(text) == document


def test_image_facts(limits: ImageLimits) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = save_bytes(Image.new("RGBA", (64, 48)), "PNG", exif=exif, icc_profile=icc)
    document = extract_metadata(data, limits)
    assert document["format"] == "PNG"
    assert (document["width"], document["height"]) == (48, 64)
    assert (document["stored_width"], document["stored_height"]) == (64, 48)
    assert document["orientation"] == 6
    assert document["mode"] == "RGBA"
    assert document["frames"] == 1
    assert document["animated"] is False
    assert document["has_alpha"] is True
    assert document["icc_profile"]["color_space"] == "RGB"
    assert document["icc_profile"]["description"]
    assert document["warnings"] == []


def test_animated_frames_counted(limits: ImageLimits) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    frames = [Image.new("RGB", (16, 16), colour) for colour in colours]
    data = save_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    document = extract_metadata(data, limits)
    assert document["frames"] == 4
    assert document["animated"] is True
    assert document["exif"] is None
    assert document["gps"] is None


def test_xmp_returned_as_text(limits: ImageLimits) -> None:
    packet = "<x:xmpmeta xmlns:x='adobe:ns:meta/'><t>caf\u00e9</t></x:xmpmeta>"
    data = jpeg_with(Image.Exif(), xmp=packet.encode())
    document = extract_metadata(data, limits)
    assert document["xmp"] == packet


def test_xmp_in_png_itxt(limits: ImageLimits) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>png</x:xmpmeta>")
    data = save_bytes(Image.new("RGB", (8, 8)), "PNG", pnginfo=info)
    assert extract_metadata(data, limits)["xmp"] == "<x:xmpmeta>png</x:xmpmeta>"


def iptc_jpeg() -> bytes:
    def dataset(number: int, value: bytes) -> bytes:
        return b"\x1c\x02" + bytes([number]) + struct.pack(">H", len(value)) + value

    iptc = dataset(25, b"alpha") + dataset(25, b"beta") + dataset(120, b"A caption")
    if len(iptc) % 2:
        iptc += b"\x00"
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    body = b"Photoshop 3.0\x00" + resource
    segment = b"\xff\xed" + struct.pack(">H", len(body) + 2) + body
    plain = save_bytes(Image.new("RGB", (16, 16)), "JPEG")
    return plain[:2] + segment + plain[2:]


def test_iptc_datasets(limits: ImageLimits) -> None:
    document = extract_metadata(iptc_jpeg(), limits)
    assert document["iptc"]["Keywords"] == ["alpha", "beta"]
    assert document["iptc"]["Caption"] == "A caption"


def test_broken_exif_gives_warning_not_error(limits: ImageLimits) -> None:
    junk = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00" + b"\xff" * 9
    data = save_bytes(Image.new("RGB", (16, 16)), "JPEG", exif=junk)
    document = extract_metadata(data, limits)
    json.dumps(document, allow_nan=False)
    assert document["format"] == "JPEG"
    assert document["warnings"]
    assert document["gps"] is None


def test_truncated_png_metadata_warns(limits: ImageLimits) -> None:
    noisy = Image.effect_noise((64, 48), 60).convert("RGB")
    data = save_bytes(noisy, "PNG")[:-300]
    document = extract_metadata(data, limits)
    assert document["width"] == 64
    assert document["exif"] is None
    assert document["warnings"][0].startswith("exif: could not be read")


def test_metadata_rejects_bomb_and_empty(limits: ImageLimits) -> None:
    with pytest.raises(ImageTooLargeError):
        extract_metadata(png_header_only(60_000, 60_000), limits)
    with pytest.raises(InvalidImageError):
        extract_metadata(b"", limits)


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp", "avif"])
def test_no_gps_in_converted_output(limits: ImageLimits, fmt: str) -> None:
    source = jpeg_with(gps_exif(), xmp=b"<x:xmpmeta>secret</x:xmpmeta>")
    assert extract_metadata(source, limits)["gps"] is not None
    result = convert_image(source, fmt, {}, limits)
    output = reopen(result.data)
    assert dict(output.getexif()) == {}
    assert "xmp" not in output.info
    document = extract_metadata(result.data, limits)
    assert document["gps"] is None
    assert document["exif"] is None
    assert document["xmp"] is None


GPS_CASES = [
    ({}, None),
    ({2: (rational(10, 1), rational(0, 0), rational(0, 1)), 1: "N"}, None),
    (
        {2: (rational(10, 1), rational(30, 1), rational(0, 1)), 1: "N"},
        {"latitude": 10.5, "longitude": None, "altitude": None},
    ),
    (
        {2: (rational(91, 1), rational(0, 1), rational(0, 1)), 1: "N"},
        None,
    ),
    (
        {4: (rational(10, 1),), 3: b"W\x00"},
        {"latitude": None, "longitude": -10.0, "altitude": None},
    ),
    (
        {4: (rational(10, 1),), 3: "Q"},
        None,
    ),
    ({6: rational(5, 0)}, None),
    (
        {6: rational(5, 2), 5: b"\x01"},
        {"latitude": None, "longitude": None, "altitude": -2.5},
    ),
]


@pytest.mark.parametrize(("ifd", "expected"), GPS_CASES)
def test_gps_to_decimal_table(ifd: dict[int, object], expected: object) -> None:
    assert gps_to_decimal(ifd) == expected
