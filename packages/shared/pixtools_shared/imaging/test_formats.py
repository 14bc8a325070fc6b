from __future__ import annotations

import struct

import pytest
from PIL import Image

from pixtools_shared.errors import UnsupportedFormatError
from pixtools_shared.imaging.camera_raw import detect_camera_raw
from pixtools_shared.imaging.conftest import save_bytes
from pixtools_shared.imaging.formats import ALLOWED_INPUT_FORMATS, sniff_format
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.probe import probe_image

SMALL = Image.new("RGB", (8, 6), (10, 20, 30))


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 32


def tiff_with_tags(tags: dict[int, object]) -> bytes:
    return save_bytes(SMALL, "TIFF", tiffinfo=tags)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (save_bytes(SMALL, "JPEG"), "JPEG"),
        (save_bytes(SMALL, "PNG"), "PNG"),
        (save_bytes(SMALL, "GIF"), "GIF"),
        (save_bytes(SMALL, "WEBP"), "WEBP"),
        (save_bytes(SMALL, "AVIF"), "AVIF"),
        (save_bytes(SMALL, "TIFF"), "TIFF"),
        (save_bytes(SMALL, "MPO"), "JPEG"),
        (save_bytes(SMALL, "BMP"), "BMP"),
        (save_bytes(SMALL, "PDF"), "PDF"),
        (save_bytes(SMALL, "ICO"), "ICO"),
        (save_bytes(SMALL, "PPM"), "PNM"),
        (save_bytes(SMALL, "JPEG2000"), "JPEG2000"),
        (ftyp(b"heic", b"mif1", b"heic"), "HEIC"),
        (ftyp(b"mif1", b"mif1", b"heic"), "HEIC"),
        (ftyp(b"mif1", b"mif1", b"avif"), "AVIF"),
        (ftyp(b"mif1", b"mif1"), "HEIF"),
        (ftyp(b"crx ", b"crx "), "CR3"),
        (ftyp(b"isom", b"mp41"), "MP4"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 20, "JXL"),
        (b"\xff\x0a\xfa\x7f" + b"\x00" * 20, "JXL"),
        (b"IIRO\x08\x00\x00\x00", "ORF"),
        (b"IIU\x00\x08\x00\x00\x00", "RW2"),
        (b"FUJIFILMCCD-RAW 0201", "RAF"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"<svg width='1' height='1'></svg>", "SVG"),
        (b"<!DOCTYPE html><html></html>", "HTML"),
        (b"just some plain text\nwith lines\n", "text"),
        ("caf\u00e9 cr\u00e8me".encode(), "text"),
        (b"PK\x03\x04rest", "ZIP"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "RIFF"),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 4, None),
        (b"", None),
    ],
)
def test_sniff_format_table(data: bytes, expected: str | None) -> None:
    assert sniff_format(data) == expected


def test_sniff_ignores_claimed_name_inside_data() -> None:
    # A PNG stays a PNG even when its bytes mention another type.
    data = save_bytes(SMALL, "PNG") + b"JFIF .jpg image/jpeg"
    assert sniff_format(data) == "PNG"


def test_allowed_formats_list() -> None:
    assert {"JPEG", "PNG", "WEBP", "AVIF", "GIF", "TIFF"} == set(ALLOWED_INPUT_FORMATS)


def test_camera_raw_dng_version_tag() -> None:
    data = tiff_with_tags({50706: b"\x01\x04\x00\x00", 271: "Canon"})
    assert detect_camera_raw(data) == "DNG"
    assert sniff_format(data) == "DNG"


def test_camera_raw_cr2_marker() -> None:
    plain = tiff_with_tags({})
    data = plain[:8] + b"CR\x02\x00" + plain[12:]
    assert sniff_format(data) == "CR2"


def test_camera_raw_preview_with_sub_ifds() -> None:
    # NEF layout: IFD0 is a reduced-resolution preview pointing to SubIFDs.
    data = tiff_with_tags({254: 1, 271: "NIKON CORPORATION", 330: 8})
    assert detect_camera_raw(data) == "NEF"


def test_camera_raw_unknown_maker_is_generic() -> None:
    data = tiff_with_tags({254: 1, 271: "Acme Cameras", 330: 8})
    assert detect_camera_raw(data) == "camera RAW"


def test_plain_tiff_is_not_raw() -> None:
    data = tiff_with_tags({271: "NIKON CORPORATION", 272: "Coolscan"})
    assert detect_camera_raw(data) is None
    assert sniff_format(data) == "TIFF"


def test_camera_raw_walk_survives_junk() -> None:
    # A TIFF header whose IFD offsets point past the end or at itself.
    looping = (
        b"II*\x00\x08\x00\x00\x00" + b"\x01\x00" + b"\x00" * 12 + b"\x08\x00\x00\x00"
    )
    assert detect_camera_raw(looping) is None
    assert detect_camera_raw(b"II*\x00\xff\xff\xff\x7f") is None
    assert sniff_format(b"MM\x00*") == "TIFF"


@pytest.mark.parametrize(
    ("data", "detected"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), "HEIC"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 20, "JXL"),
        (save_bytes(SMALL, "BMP"), "BMP"),
        (save_bytes(SMALL, "PDF"), "PDF"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
        (b"hello, this is text", "text"),
        (tiff_with_tags({50706: b"\x01\x04\x00\x00"}), "DNG"),
    ],
)
def test_probe_rejects_with_detected_type(data: bytes, detected: str) -> None:
    with pytest.raises(UnsupportedFormatError) as caught:
        probe_image(data, ImageLimits())
    assert caught.value.detected == detected
    assert detected in caught.value.message
    assert caught.value.http_status == 415


def test_probe_rejects_unknown_magic() -> None:
    with pytest.raises(UnsupportedFormatError) as caught:
        probe_image(b"\x13\x37" * 64, ImageLimits())
    assert caught.value.detected is None
    assert "not in a recognized image format" in caught.value.message
