"""Conversion of the EXIF GPS IFD to decimal degrees and metres."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Rational
from typing import Any

from pixtools_shared.imaging.jsonsafe import rational_to_float

# Tag numbers of the GPS IFD (EXIF 2.3, section 4.6.6).
GPS_LATITUDE_REF = 1
GPS_LATITUDE = 2
GPS_LONGITUDE_REF = 3
GPS_LONGITUDE = 4
GPS_ALTITUDE_REF = 5
GPS_ALTITUDE = 6

# Decimal places kept: 7 for degrees (about 1 cm), 3 for metres.
_DEGREE_DIGITS = 7
_METRE_DIGITS = 3


def gps_to_decimal(gps_ifd: Mapping[int, Any]) -> dict[str, float | None] | None:
    """Return latitude and longitude in signed decimal degrees and altitude in
    metres (negative below sea level), or None when the IFD has none of them.

    South and West references give negative coordinates. A coordinate with a zero
    denominator, an out-of-range value or an unknown reference becomes None.
    """
    latitude = _coordinate(
        gps_ifd.get(GPS_LATITUDE), gps_ifd.get(GPS_LATITUDE_REF), "N", "S", 90.0
    )
    longitude = _coordinate(
        gps_ifd.get(GPS_LONGITUDE), gps_ifd.get(GPS_LONGITUDE_REF), "E", "W", 180.0
    )
    altitude = _altitude(gps_ifd.get(GPS_ALTITUDE), gps_ifd.get(GPS_ALTITUDE_REF))
    if latitude is None and longitude is None and altitude is None:
        return None
    return {"latitude": latitude, "longitude": longitude, "altitude": altitude}


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Rational):
        return rational_to_float(value)
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _reference(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip().upper()
    return text or None


def _coordinate(
    value: object,
    reference: object,
    positive: str,
    negative: str,
    limit: float,
) -> float | None:
    if value is None:
        return None
    parts: Sequence[object] = value if isinstance(value, list | tuple) else (value,)
    if not 1 <= len(parts) <= 3:
        return None

    numbers: list[float] = []
    for part in parts:
        number = _number(part)
        if number is None or number < 0:
            return None
        numbers.append(number)
    divisors = (1.0, 60.0, 3600.0)
    degrees = sum(number / divisors[index] for index, number in enumerate(numbers))

    ref = _reference(reference)
    if ref is not None and ref not in (positive, negative):
        return None
    if ref == negative:
        degrees = -degrees
    if abs(degrees) > limit:
        return None
    return round(degrees, _DEGREE_DIGITS)


def _altitude(value: object, reference: object) -> float | None:
    metres = _number(value)
    if metres is None:
        return None
    below_sea_level = reference in (1, b"\x01", "1")
    if below_sea_level:
        metres = -metres
    return round(metres, _METRE_DIGITS)
