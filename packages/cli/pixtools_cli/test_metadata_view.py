"""Tests of the readable metadata view."""

from __future__ import annotations

from pixtools_cli.metadata_view import (
    PRIVATE_LOCATION_NOTE,
    format_coordinates,
    format_metadata,
    format_value,
)

METADATA = {
    "format": "JPEG",
    "width": 2000,
    "height": 3000,
    "stored_width": 3000,
    "stored_height": 2000,
    "orientation": 6,
    "mode": "RGB",
    "frames": 1,
    "animated": False,
    "has_alpha": False,
    "icc_profile": {"description": "sRGB IEC61966-2.1", "color_space": "RGB"},
    "exif": {
        "IFD0": {"Make": "PixTestCam", "Model": "Model X1"},
        "Exif": {"DateTimeOriginal": "2024:05:01 10:00:00"},
        "GPS": {"GPSLatitudeRef": "N", "GPSLatitude": [40.0, 41.0, 21.12]},
    },
    "gps": {"latitude": 40.6892, "longitude": -74.0445, "altitude": 12.5},
    "xmp": "<x:xmpmeta/>",
    "iptc": {"Keywords": ["harbour", "statue"]},
    "warnings": [],
}


def test_coordinates_with_hemispheres() -> None:
    assert format_coordinates(40.6892, -74.0445) == (
        "40.689200, -74.044500 (40.689200 N, 74.044500 W)"
    )
    assert format_coordinates(-33.8568, 151.2153) == (
        "-33.856800, 151.215300 (33.856800 S, 151.215300 E)"
    )


def test_format_value_kinds() -> None:
    assert format_value(True) == "yes"
    assert format_value(0.5) == "0.5"
    assert format_value([1, 2.5, "x"]) == "1, 2.5, x"
    assert format_value(None) == "-"
    assert format_value("x" * 500, limit=10) == "xxxxxxx..."
    assert format_value("evil\x1b[2J") == "evil\\x1b[2J"


def test_metadata_view_lines() -> None:
    lines = format_metadata(METADATA)

    assert lines[0] == "Image        JPEG, 2000 x 3000 px, RGB"
    assert "Stored as    3000 x 2000 px, EXIF orientation 6" in lines
    assert "ICC profile  sRGB IEC61966-2.1 (RGB)" in lines
    assert "Camera       PixTestCam Model X1" in lines
    assert "Taken        2024:05:01 10:00:00" in lines
    location = lines.index(
        "Location     40.689200, -74.044500 (40.689200 N, 74.044500 W), altitude 12.5 m"
    )
    assert lines[location + 1] == f"             {PRIVATE_LOCATION_NOTE}"
    assert "  GPS.GPSLatitude                    40, 41, 21.12" in lines
    assert "  Keywords                           harbour, statue" in lines
    assert "XMP          present, 12 characters (--json shows it)" in lines


def test_metadata_view_without_gps() -> None:
    lines = format_metadata({"format": "PNG", "width": 4, "height": 4, "gps": None})

    assert lines == ["Image        PNG, 4 x 4 px"]
