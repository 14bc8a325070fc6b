"""Identification of file formats from their leading bytes.

The format of an upload is always taken from its content, never from its file name
or declared content type. `sniff_format` names supported inputs and also common
formats that PixTools rejects (HEIC, JPEG XL, camera RAW, BMP, PDF, SVG...), so the
415 error names the detected type.
"""

from __future__ import annotations

from pixtools_shared.imaging.camera_raw import detect_camera_raw

# Format names returned by sniff_format that PixTools decodes. MPO (multi-picture
# JPEG) sniffs as JPEG, and Pillow reports MPO when it opens such a file.
ALLOWED_INPUT_FORMATS: frozenset[str] = frozenset(
    {"JPEG", "PNG", "WEBP", "AVIF", "GIF", "TIFF"}
)

# Pillow plugins allowed to open each sniffed format (`formats=` of Image.open).
PILLOW_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": ("JPEG", "MPO"),
    "PNG": ("PNG",),
    "WEBP": ("WEBP",),
    "AVIF": ("AVIF",),
    "GIF": ("GIF",),
    "TIFF": ("TIFF",),
}

# ISO base media (ftyp box) brands: AV1 image brands first, then HEVC ones.
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_VIDEO_BRANDS = {b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V "}

# Simple prefixes, checked in order after the special cases below.
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JXL"),
    (b"\xff\x0a", "JXL"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"BM", "BMP"),
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"icns", "ICNS"),
    (b"qoif", "QOI"),
    (b"v/1\x01", "OpenEXR"),
    (b"DDS ", "DDS"),
    (b"FLIF", "FLIF"),
    (b"IIRO", "ORF"),
    (b"IIRS", "ORF"),
    (b"MMOR", "ORF"),
    (b"IIU\x00", "RW2"),
    (b"FUJIFILMCCD-RAW", "RAF"),
    (b"FOVb", "X3F"),
    (b"II\x1a\x00\x00\x00HEAPCCDR", "CRW"),
    (b"PK\x03\x04", "ZIP"),
    (b"\x1f\x8b", "GZIP"),
    (b"7z\xbc\xaf\x27\x1c", "7Z"),
    (b"Rar!", "RAR"),
    (b"\x7fELF", "ELF"),
    (b"MZ", "EXE"),
)


def sniff_format(data: bytes) -> str | None:
    """Name the format of `data` from its magic bytes, or None if unknown.

    Supported inputs return a name from ALLOWED_INPUT_FORMATS. TIFF-based camera
    RAW files return their raw type (CR2, NEF, DNG...), not "TIFF".
    """
    if not data:
        return None

    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return detect_camera_raw(data) or "TIFF"
    if data[:4] in (b"II+\x00", b"MM\x00+"):
        return "TIFF"  # BigTIFF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] == b"RIFF":
        return "RIFF"
    if data[4:8] == b"ftyp":
        return _sniff_iso_media(data)

    for prefix, name in _PREFIXES:
        if data.startswith(prefix):
            return name

    return _sniff_text(data)


def _sniff_iso_media(data: bytes) -> str:
    box_size = int.from_bytes(data[:4], "big")
    end = min(max(box_size, 16), 4096, len(data))
    brands = {data[8:12]}
    brands.update(data[offset : offset + 4] for offset in range(16, end - 3, 4))

    if data[8:12] == b"crx ":
        return "CR3"
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEIC_BRANDS:
        return "HEIC"
    if brands & _HEIF_BRANDS:
        return "HEIF"
    if brands & _VIDEO_BRANDS:
        return "MP4"
    return "ISO media"


def _sniff_text(data: bytes) -> str | None:
    pnm_digit = data[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6", b"7")
    if data[:1] == b"P" and pnm_digit and data[2:3] in (b" ", b"\t", b"\r", b"\n"):
        return "PNM"

    text = _decode_utf8_prefix(data[:4096])
    if text is None:
        return None

    stripped = text.lstrip("\ufeff \t\r\n").lower()
    if "<svg" in stripped[:2048]:
        return "SVG"
    if stripped.startswith(("<!doctype html", "<html")):
        return "HTML"
    if stripped.startswith("<?xml"):
        return "XML"
    if all(char.isprintable() or char in "\t\r\n\ufeff" for char in text):
        return "text"
    return None


def _decode_utf8_prefix(head: bytes) -> str | None:
    # A multi-byte character cut at the end of `head` still counts as text, so
    # retry without up to three trailing bytes.
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
