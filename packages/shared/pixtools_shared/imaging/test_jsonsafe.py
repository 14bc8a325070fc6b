from __future__ import annotations

import json
from fractions import Fraction

import pytest
from PIL.TiffImagePlugin import IFDRational

from pixtools_shared.imaging.jsonsafe import MAX_BYTES_LENGTH, to_json_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (7, 7),
        (1.5, 1.5),
        (float("nan"), None),
        (float("inf"), None),
        (float("-inf"), None),
        (IFDRational(1, 4), 0.25),
        (IFDRational(5, 0), None),
        (IFDRational(0, 0), None),
        (Fraction(3, 2), 1.5),
        ("plain", "plain"),
        ("nul\x00inside\x00", "nulinside"),
        ("lone \ud800 surrogate", "lone ? surrogate"),
        (b"0230", "0230"),
        (b"text with trailing nuls\x00\x00", "text with trailing nuls"),
        (b"\x00\x01\xff", "hex:0001ff"),
        (b"in\x00side", "hex:696e0073696465"),
        (b"\xe2\x82\xac euro", "\u20ac euro"),
        (bytearray(b"ab"), "ab"),
        (b"", ""),
        (b"\x00" * (MAX_BYTES_LENGTH + 1), f"<{MAX_BYTES_LENGTH + 1} bytes omitted>"),
        ((1, 2, (3, IFDRational(1, 0))), [1, 2, [3, None]]),
        ({1: b"\x01", "k": {"n": float("nan")}}, {"1": "hex:01", "k": {"n": None}}),
        ({"a\x00": 1}, {"a": 1}),
        (frozenset({4}), [4]),
        (object, str(object)),
    ],
)
def test_to_json_value_table(value: object, expected: object) -> None:
    converted = to_json_value(value)
    assert converted == expected
    json.dumps(converted, allow_nan=False)


def test_deep_nesting_is_cut() -> None:
    value: object = 1
    for _ in range(20):
        value = [value]
    converted = to_json_value(value)
    json.dumps(converted, allow_nan=False)
    depth = 0
    while isinstance(converted, list):
        converted = converted[0]
        depth += 1
    assert depth == 9
    assert converted is None


def test_long_sequence_summarized() -> None:
    assert to_json_value(tuple(range(5000))) == "<5000 values omitted>"
