"""Detection of camera RAW files that use the TIFF container (CR2, NEF, DNG...).

Many raw formats start with a valid TIFF header, and Pillow opens them as TIFF. It
then decodes only the small preview in IFD0, or fails on the sensor data. PixTools
rejects them instead, so `detect_camera_raw` walks the IFD chain and the SubIFDs
with plain struct reads (no decoding) and names the raw type when it finds one of:

- the CR2 marker `CR\\x02` right after the TIFF header (Canon);
- a DNGVersion tag (50706);
- an IFD whose PhotometricInterpretation is CFA (32803) or LinearRaw (34892);
- an IFD0 flagged as a reduced-resolution preview (NewSubFileType bit 0) that
  points to SubIFDs, which is how NEF, ARW, PEF and similar files store the
  full image.
"""

from __future__ import annotations

import struct

_TAG_NEW_SUBFILE_TYPE = 254
_TAG_PHOTOMETRIC = 262
_TAG_MAKE = 271
_TAG_SUB_IFDS = 330
_TAG_DNG_VERSION = 50706

_PHOTOMETRIC_CFA = 32803
_PHOTOMETRIC_LINEAR_RAW = 34892

# Bounds on the walk, so a crafted file with looping or huge IFDs stays cheap.
_MAX_IFDS = 32
_MAX_ENTRIES = 1024

# Raw file type by the first word of the Make tag, upper case.
_RAW_NAME_BY_MAKE = {
    "NIKON": "NEF",
    "SONY": "ARW",
    "PENTAX": "PEF",
    "RICOH": "PEF",
    "CANON": "CR2",
    "SAMSUNG": "SRW",
    "OLYMPUS": "ORF",
    "OM": "ORF",
    "PANASONIC": "RW2",
    "LEICA": "RWL",
    "FUJIFILM": "RAF",
    "HASSELBLAD": "3FR",
    "KODAK": "DCR",
    "MAMIYA": "MEF",
    "PHASE": "IIQ",
    "EPSON": "ERF",
}


class _TiffReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.order = "<" if data[:2] == b"II" else ">"

    def u16(self, offset: int) -> int | None:
        if offset < 0 or offset + 2 > len(self.data):
            return None
        value: int = struct.unpack_from(self.order + "H", self.data, offset)[0]
        return value

    def u32(self, offset: int) -> int | None:
        if offset < 0 or offset + 4 > len(self.data):
            return None
        value: int = struct.unpack_from(self.order + "I", self.data, offset)[0]
        return value

    def entry_values(self, entry: int) -> list[int]:
        """Return the SHORT or LONG values of the IFD entry at offset `entry`."""
        field_type = self.u16(entry + 2)
        count = self.u32(entry + 4)
        if field_type is None or count is None or count > 64:
            return []
        size = {3: 2, 4: 4, 13: 4}.get(field_type)
        if size is None:
            return []
        start = entry + 8
        if size * count > 4:
            pointer = self.u32(entry + 8)
            if pointer is None:
                return []
            start = pointer
        read = self.u16 if size == 2 else self.u32
        values = [read(start + index * size) for index in range(count)]
        return [value for value in values if value is not None]

    def entry_text(self, entry: int) -> str:
        field_type = self.u16(entry + 2)
        count = self.u32(entry + 4)
        if field_type != 2 or count is None or count > 256:
            return ""
        start = entry + 8
        if count > 4:
            pointer = self.u32(entry + 8)
            if pointer is None:
                return ""
            start = pointer
        raw = self.data[start : start + count]
        return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def detect_camera_raw(data: bytes) -> str | None:
    """Name the camera RAW type of a TIFF-based file, or None for a plain TIFF."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    if data[8:11] == b"CR\x02":
        return "CR2"

    reader = _TiffReader(data)
    first = reader.u32(4)
    if first is None:
        return None

    pending = [first]
    visited: set[int] = set()
    make = ""
    raw_photometric = False
    preview_with_sub_ifds = False
    is_ifd0 = True

    while pending and len(visited) < _MAX_IFDS:
        offset = pending.pop(0)
        if offset in visited or offset < 8:
            continue
        visited.add(offset)
        count = reader.u16(offset)
        if count is None or count > _MAX_ENTRIES:
            continue

        new_subfile_type = 0
        sub_ifds: list[int] = []
        for index in range(count):
            entry = offset + 2 + index * 12
            tag = reader.u16(entry)
            if tag is None:
                break
            if tag == _TAG_DNG_VERSION:
                return "DNG"
            if tag == _TAG_MAKE and not make:
                make = reader.entry_text(entry)
            elif tag == _TAG_PHOTOMETRIC:
                values = reader.entry_values(entry)
                if values and values[0] in (_PHOTOMETRIC_CFA, _PHOTOMETRIC_LINEAR_RAW):
                    raw_photometric = True
            elif tag == _TAG_NEW_SUBFILE_TYPE:
                values = reader.entry_values(entry)
                new_subfile_type = values[0] if values else 0
            elif tag == _TAG_SUB_IFDS:
                sub_ifds = reader.entry_values(entry)

        if is_ifd0 and new_subfile_type & 1 and sub_ifds:
            preview_with_sub_ifds = True
        is_ifd0 = False
        pending.extend(sub_ifds)

        next_offset = reader.u32(offset + 2 + count * 12)
        if next_offset:
            pending.append(next_offset)

    if not (raw_photometric or preview_with_sub_ifds):
        return None
    maker = make.split(" ", 1)[0].upper() if make else ""
    return _RAW_NAME_BY_MAKE.get(maker, "camera RAW")
