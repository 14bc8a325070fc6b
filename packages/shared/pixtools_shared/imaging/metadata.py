"""The metadata operation: EXIF, GPS, XMP, IPTC and image facts as strict JSON.

The document has these keys:

- format, width, height (displayed size, after EXIF orientation), stored_width,
  stored_height, orientation, mode, frames, animated, has_alpha;
- icc_profile: {"description", "color_space"} or null;
- exif: {"IFD0": {...}, "Exif": {...}, "GPS": {...}, "Interop": {...},
  "IFD1": {...}} with tag names from PIL.ExifTags (unknown tags as "0x9A01");
  sub-IFDs that are absent are left out;
- gps: {"latitude", "longitude", "altitude"} in decimal degrees and metres, or null;
- xmp: the XMP packet as text, or null (it is not parsed as XML);
- iptc: {dataset name: value} or null;
- warnings: sections that could not be read, each with the reason.

A damaged section never fails the whole operation: it becomes null and gets a
warning. Only an unreadable or disallowed file raises (see probe.open_image).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import structlog
from PIL import ExifTags, Image, ImageCms, ImageFile, IptcImagePlugin

from pixtools_shared.imaging.gps import gps_to_decimal
from pixtools_shared.imaging.jsonsafe import (
    JsonValue,
    bytes_to_json,
    clean_text,
    is_printable,
    to_json_value,
)
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.modes import icc_color_space
from pixtools_shared.imaging.pillow_warnings import captured_pillow_warnings
from pixtools_shared.imaging.probe import ImageInfo, open_image

log = structlog.get_logger(__name__)

# Longest XMP packet returned, in characters; longer ones are cut with a warning.
MAX_XMP_CHARS = 262_144

_USER_COMMENT_TAG = 0x9286

# IFD0 tags that describe the TIFF container or duplicate another section (ICC,
# XMP, IPTC, Photoshop data, sub-IFD pointers), so they are left out of "exif".
_SKIPPED_IFD0_TAGS = frozenset(
    {
        256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322,
        323, 324, 325, 330, 338, 339, 700, 33723, 34377, 34665, 34675, 34853,
        40965,
    }
)  # fmt: skip

_SUB_IFDS: tuple[tuple[str, ExifTags.IFD], ...] = (
    ("Exif", ExifTags.IFD.Exif),
    ("GPS", ExifTags.IFD.GPSInfo),
    ("Interop", ExifTags.IFD.Interop),
    ("IFD1", ExifTags.IFD.IFD1),
)

# Names of the common IIM record 2 datasets (IPTC-NAA IIM 4.2, chapter 6).
_IPTC_NAMES: dict[tuple[int, int], str] = {
    (1, 90): "CodedCharacterSet",
    (2, 0): "RecordVersion",
    (2, 5): "ObjectName",
    (2, 10): "Urgency",
    (2, 15): "Category",
    (2, 20): "SupplementalCategories",
    (2, 25): "Keywords",
    (2, 40): "SpecialInstructions",
    (2, 55): "DateCreated",
    (2, 60): "TimeCreated",
    (2, 80): "Byline",
    (2, 85): "BylineTitle",
    (2, 90): "City",
    (2, 92): "Sublocation",
    (2, 95): "ProvinceState",
    (2, 100): "CountryCode",
    (2, 101): "Country",
    (2, 103): "OriginalTransmissionReference",
    (2, 105): "Headline",
    (2, 110): "Credit",
    (2, 115): "Source",
    (2, 116): "CopyrightNotice",
    (2, 118): "Contact",
    (2, 120): "Caption",
    (2, 122): "CaptionWriter",
}


def extract_metadata(data: bytes, limits: ImageLimits) -> dict[str, Any]:
    """Read the metadata of `data` into a JSON-ready dict (see module docstring).

    Raises InvalidImageError, UnsupportedFormatError or ImageTooLargeError when
    the file itself is rejected.
    """
    image, info = open_image(data, limits)
    warnings: list[str] = []
    try:
        document = _base_facts(info)

        exif = _section("exif", warnings, lambda: _read_exif(image, warnings))
        document["exif"] = exif
        if exif is not None:
            document["gps"] = _section("gps", warnings, lambda: _read_gps(image))
        else:
            document["gps"] = None
        document["xmp"] = _section("xmp", warnings, lambda: _read_xmp(image, warnings))
        document["iptc"] = _section("iptc", warnings, lambda: _read_iptc(image))
        document["icc_profile"] = _section("icc_profile", warnings, lambda: _icc(image))
    finally:
        image.close()

    document["warnings"] = warnings
    # The converters above produce strict JSON; this guards the contract.
    json.dumps(document, allow_nan=False)
    return document


def _base_facts(info: ImageInfo) -> dict[str, Any]:
    return {
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "stored_width": info.stored_width,
        "stored_height": info.stored_height,
        "orientation": info.orientation,
        "mode": info.mode,
        "frames": info.frames,
        "animated": info.animated,
        "has_alpha": info.has_alpha,
    }


def _section(
    name: str, warnings: list[str], read: Callable[[], JsonValue]
) -> JsonValue:
    try:
        return read()
    except Exception as exc:
        # Metadata blocks from cameras and editors are often malformed in ways
        # Pillow reports with any exception type; the other sections still count.
        log.info("metadata_section_unreadable", section=name, error=repr(exc))
        warnings.append(f"{name}: could not be read ({type(exc).__name__}: {exc})")
        return None


def _read_exif(image: Image.Image, warnings: list[str]) -> dict[str, Any] | None:
    # getexif() decodes a PNG whose eXIf chunk follows the pixel data; open_image
    # has already applied ImageLimits, so that decode is bounded.
    with captured_pillow_warnings("metadata") as messages:
        exif = image.getexif()
        sub_ifds = {name: exif.get_ifd(ifd) for name, ifd in _SUB_IFDS}
    warnings.extend(f"exif: {message}" for message in messages)
    if image.format == "TIFF":
        # In a TIFF file IFD1 is the second page, not a thumbnail.
        sub_ifds.pop("IFD1", None)

    sections: dict[str, Any] = {}

    ifd0 = {
        _tag_name(tag, ExifTags.TAGS): _exif_value(tag, value)
        for tag, value in exif.items()
        if tag not in _SKIPPED_IFD0_TAGS
    }
    if ifd0:
        sections["IFD0"] = ifd0

    for name, values in sub_ifds.items():
        names = ExifTags.GPSTAGS if name == "GPS" else ExifTags.TAGS
        named = {
            _tag_name(tag, names): _exif_value(tag, value)
            for tag, value in values.items()
            if isinstance(tag, int)
        }
        if named:
            sections[name] = named

    return sections or None


def _read_gps(image: Image.Image) -> dict[str, float | None] | None:
    return gps_to_decimal(image.getexif().get_ifd(ExifTags.IFD.GPSInfo))


def _tag_name(tag: int, names: dict[int, str]) -> str:
    return names.get(tag) or f"0x{tag:04X}"


def _exif_value(tag: int, value: object) -> JsonValue:
    if tag == _USER_COMMENT_TAG and isinstance(value, bytes):
        return _user_comment(value)
    return to_json_value(value)


def _user_comment(value: bytes) -> str:
    # The first 8 bytes name the character code (EXIF 2.3, table 9).
    code, body = value[:8], value[8:]
    encodings = {
        b"ASCII\x00\x00\x00": "latin-1",
        b"JIS\x00\x00\x00\x00\x00": "shift_jis",
        b"UNICODE\x00": "utf-16-be" if not body.startswith(b"\xff\xfe") else "utf-16",
    }
    encoding = encodings.get(code)
    if code == b"\x00" * 8:
        return bytes_to_json(body)
    if encoding is None:
        return bytes_to_json(value)
    text = body.decode(encoding, errors="replace")
    text = clean_text(text).strip()
    return text if is_printable(text) else bytes_to_json(value)


def _read_xmp(image: Image.Image, warnings: list[str]) -> str | None:
    raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not raw:
        return None
    if isinstance(raw, bytes):
        raw = _decode_xmp_bytes(raw)
    if not isinstance(raw, str):
        return None

    text = clean_text(raw).strip()
    if len(text) > MAX_XMP_CHARS:
        warnings.append(f"xmp: packet of {len(text)} characters cut to {MAX_XMP_CHARS}")
        text = text[:MAX_XMP_CHARS]
    return text or None


def _decode_xmp_bytes(raw: bytes) -> str:
    # XMP packets are UTF-8 unless they start with a UTF-16 byte order mark.
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    return raw.decode("utf-8", errors="replace")


def _read_iptc(image: Image.Image) -> dict[str, Any] | None:
    if not isinstance(image, ImageFile.ImageFile):
        return None
    records = IptcImagePlugin.getiptcinfo(image)
    if not records:
        return None

    document: dict[str, Any] = {}
    for key, value in records.items():
        name = _IPTC_NAMES.get(key) or f"{key[0]}:{key[1]}"
        document[name] = to_json_value(value)
    return document


def _icc(image: Image.Image) -> dict[str, Any] | None:
    icc = image.info.get("icc_profile")
    if not icc:
        return None
    description: str | None = None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = clean_text(ImageCms.getProfileDescription(profile)).strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.info("icc_profile_unreadable", error=repr(exc))
    return {
        "description": description or None,
        "color_space": icc_color_space(icc),
        "size_bytes": len(icc),
    }
