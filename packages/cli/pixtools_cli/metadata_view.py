"""Readable rendering of the metadata document of a job (`pixtools metadata`).

The document is the result of the metadata operation: image facts, EXIF by
sub-IFD, GPS in decimal degrees, XMP as text, IPTC by dataset name and read
warnings. GPS coordinates are flagged as private data.
"""

from __future__ import annotations

import json
from typing import Any

from pixtools_cli.terminal import printable

MAX_VALUE_CHARS = 160
LABEL_WIDTH = 13

PRIVATE_LOCATION_NOTE = (
    "PRIVATE: the file records where it was taken. Share a converted result "
    "instead: results carry no EXIF or GPS data."
)

EXIF_SECTIONS = ("IFD0", "Exif", "GPS", "Interop", "IFD1")


def format_value(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """One-line text for a metadata value, cut at `limit` characters."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, list):
        text = ", ".join(format_value(item, limit) for item in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    elif value is None:
        text = "-"
    else:
        text = str(value)
    text = printable(text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def format_coordinates(latitude: float, longitude: float) -> str:
    """`40.689200, -74.044500 (40.689200 N, 74.044500 W)`."""
    north_south = "N" if latitude >= 0 else "S"
    east_west = "E" if longitude >= 0 else "W"
    return (
        f"{latitude:.6f}, {longitude:.6f} "
        f"({abs(latitude):.6f} {north_south}, {abs(longitude):.6f} {east_west})"
    )


def _row(label: str, value: str) -> str:
    return f"{label:<{LABEL_WIDTH}}{value}"


def _image_rows(metadata: dict[str, Any]) -> list[str]:
    rows = []
    size = f"{metadata.get('width')} x {metadata.get('height')} px"
    facts = [str(metadata.get("format", "?")), size]
    if metadata.get("mode"):
        facts.append(str(metadata["mode"]))
    rows.append(_row("Image", format_value(", ".join(facts))))

    stored = (metadata.get("stored_width"), metadata.get("stored_height"))
    orientation = metadata.get("orientation")
    if orientation not in (None, 1) and None not in stored:
        rows.append(
            _row(
                "Stored as",
                f"{stored[0]} x {stored[1]} px, EXIF orientation {orientation}",
            )
        )
    frames = metadata.get("frames")
    if frames not in (None, 1):
        animated = " (animated)" if metadata.get("animated") else ""
        rows.append(_row("Frames", f"{format_value(frames)}{animated}"))
    if "has_alpha" in metadata:
        rows.append(_row("Alpha", format_value(metadata.get("has_alpha"))))

    icc = metadata.get("icc_profile")
    if isinstance(icc, dict):
        description = format_value(icc.get("description"))
        rows.append(_row("ICC profile", f"{description} ({icc.get('color_space')})"))
    return rows


def _camera_rows(exif: dict[str, Any]) -> list[str]:
    ifd0 = exif.get("IFD0") or {}
    details = exif.get("Exif") or {}
    rows = []
    camera = " ".join(
        format_value(ifd0[key]) for key in ("Make", "Model") if ifd0.get(key)
    )
    if camera:
        rows.append(_row("Camera", camera))
    date_taken = details.get("DateTimeOriginal") or ifd0.get("DateTime")
    if date_taken:
        rows.append(_row("Taken", format_value(date_taken)))
    return rows


def _gps_rows(gps: Any) -> list[str]:
    if not isinstance(gps, dict):
        return []
    latitude = gps.get("latitude")
    longitude = gps.get("longitude")
    if not isinstance(latitude, int | float) or not isinstance(longitude, int | float):
        return []
    text = format_coordinates(float(latitude), float(longitude))
    altitude = gps.get("altitude")
    if isinstance(altitude, int | float):
        text += f", altitude {altitude:.1f} m"
    return [_row("Location", text), _row("", PRIVATE_LOCATION_NOTE)]


def _section_rows(title: str, entries: dict[str, Any]) -> list[str]:
    rows = [
        f"  {printable(name):<34} {format_value(value)}"
        for name, value in entries.items()
    ]
    return [title, *rows] if rows else []


def format_metadata(metadata: dict[str, Any]) -> list[str]:
    """Lines of the readable view: summary, location, EXIF, IPTC, XMP, warnings."""
    lines = _image_rows(metadata)
    raw_exif = metadata.get("exif")
    exif: dict[str, Any] = raw_exif if isinstance(raw_exif, dict) else {}
    lines += _camera_rows(exif)
    lines += _gps_rows(metadata.get("gps"))

    exif_rows = []
    for section in EXIF_SECTIONS:
        entries = exif.get(section)
        if isinstance(entries, dict):
            for name, value in entries.items():
                label = f"{section}.{printable(name)}"
                exif_rows.append(f"  {label:<34} {format_value(value)}")
    if exif_rows:
        lines += ["EXIF", *exif_rows]

    iptc = metadata.get("iptc")
    if isinstance(iptc, dict):
        lines += _section_rows("IPTC", iptc)

    xmp = metadata.get("xmp")
    if isinstance(xmp, str) and xmp:
        lines.append(_row("XMP", f"present, {len(xmp)} characters (--json shows it)"))

    warnings = metadata.get("warnings")
    if isinstance(warnings, list) and warnings:
        lines.append("Warnings")
        lines += [f"  {format_value(warning)}" for warning in warnings]
    return lines
