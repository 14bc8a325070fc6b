"""Fixtures and image builders shared by the imaging unit tests."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from pixtools_shared.imaging.limits import ImageLimits

EncodeFn = Callable[..., bytes]


def save_bytes(image: Image.Image, fmt: str, **params: Any) -> bytes:
    """Save `image` in Pillow format `fmt` and return the file bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def reopen(data: bytes) -> Image.Image:
    """Open and fully load an encoded image."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png_header_only(width: int, height: int) -> bytes:
    """Build a PNG that declares width x height but has no pixel data.

    It is a few dozen bytes on disk, like a decompression bomb whose header is
    all that a size check may read.
    """

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_sixteen_bit_rgb_ramp(width: int = 256) -> bytes:
    """Build a 16-bit-per-channel RGB PNG, 1 row, with R=G=B ramping 0..65535.

    Pillow cannot write 16-bit RGB PNGs, so the file is assembled by hand.
    """
    values = [round(index * 65535 / (width - 1)) for index in range(width)]
    row = b"\x00" + b"".join(struct.pack(">HHH", v, v, v) for v in values)
    ihdr = struct.pack(">IIBBBBB", width, 1, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(row))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def gif_header_only(width: int, height: int) -> bytes:
    """Build a GIF whose logical screen and single frame declare width x height."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)
    palette = b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    pixels = b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + palette + descriptor + pixels + b"\x3b"


def _s15_fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def constant_cmyk_profile(lab: tuple[float, float, float]) -> bytes:
    """Build an ICC v2 CMYK printer profile that maps every CMYK value to `lab`.

    No CMYK profile ships with Pillow or this system, and ImageCms cannot create
    one, so the tests build this minimal one: desc, wtpt and a lut16 A2B0 tag whose
    2x2x2x2 grid contains the same Lab colour (L 0..100 -> 0..0xFF00, a and b
    -128..127 -> 0..0xFFFF).
    """
    lightness, a_star, b_star = lab
    lab16 = (
        round(lightness / 100 * 0xFF00),
        round((a_star + 128) * 256),
        round((b_star + 128) * 256),
    )
    text = b"Test constant CMYK\x00"
    desc = b"desc" + b"\x00" * 4 + struct.pack(">I", len(text)) + text
    desc += struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\x00" * 67
    d50 = _s15_fixed16(0.9642) + _s15_fixed16(1.0) + _s15_fixed16(0.8249)
    wtpt = b"XYZ " + b"\x00" * 4 + d50
    lut = b"mft2" + b"\x00" * 4 + bytes([4, 3, 2, 0])
    lut += b"".join(_s15_fixed16(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut += struct.pack(">HH", 2, 2)
    lut += struct.pack(">HH", 0, 65535) * 4
    lut += struct.pack(">HHH", *lab16) * 16
    lut += struct.pack(">HH", 0, 65535) * 3

    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"A2B0", lut)]
    offset = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    body = b""
    for signature, data in tags:
        while (offset + len(body)) % 4:
            body += b"\x00"
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data

    header = struct.pack(">I", offset + len(body)) + b"\x00" * 4
    header += struct.pack(">I", 0x02100000) + b"prtr" + b"CMYK" + b"Lab "
    header += b"\x00" * 12 + b"acsp" + b"\x00" * 24 + struct.pack(">I", 0) + d50
    header += b"\x00" * (128 - len(header))
    return header + table + body


@pytest.fixture
def limits() -> ImageLimits:
    return ImageLimits(max_pixels=50_000_000, max_side=20_000)
