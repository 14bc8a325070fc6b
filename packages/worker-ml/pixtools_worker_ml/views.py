"""Self-ensemble: denoise a tile in several rotated or mirrored views and average.

The network is trained on patches in all eight orientations of the square but is not
exactly equivariant to them, so its errors in different orientations are partly
independent, and their mean lies closer to the clean image. With the 14-block int8
network and 8-bit noisy CBSD68 inputs (sigma 15/25/50), two views scored 0.06/0.05/
0.05 dB PSNR above one, four 0.09/0.08/0.08 and eight 0.10/0.09/0.08 (CPU A in the
model card). Every view costs one more pass of the network, so the number of views
is a trade of time for quality: ``views_within`` picks the most that fit a time per
megapixel.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

VIEW_COUNTS: Final = (1, 2, 4, 8)
# (transpose, quarter turns) of each view. A view rotates the array counter-clockwise
# by that many quarter turns, then transposes it. The transposed half-turn comes
# second: as the only extra view it gained the most of the seven (0.063 dB at
# sigma 15, against 0.057 for a half-turn). The first four views are the identity,
# the half-turn and the two mirror diagonals.
VIEWS: Final = (
    (False, 0),
    (True, 2),
    (False, 2),
    (True, 0),
    (False, 1),
    (False, 3),
    (True, 1),
    (True, 3),
)


def parse_views(setting: str | int) -> int | None:
    """Return the view count of a setting ("auto" gives None), or raise ValueError."""
    if setting == "auto":
        return None
    try:
        count = int(setting)
    except ValueError:
        count = 0
    if count not in VIEW_COUNTS:
        choices = ", ".join(str(value) for value in VIEW_COUNTS)
        raise ValueError(f"views must be auto or one of {choices}, got {setting!r}")
    return count


def to_view(array: NDArray[Any], index: int) -> NDArray[Any]:
    """Return the HxWxC ``array`` seen in view ``index`` (a strided view, no copy)."""
    transpose, turns = VIEWS[index]
    turned = np.rot90(array, turns)
    return turned.transpose(1, 0, 2) if transpose else turned


def from_view(array: NDArray[Any], index: int) -> NDArray[Any]:
    """Undo ``to_view``: map an array in view ``index`` back to the original frame."""
    transpose, turns = VIEWS[index]
    if transpose:
        array = array.transpose(1, 0, 2)
    return np.rot90(array, -turns)


def views_within(seconds_per_megapixel: float, target: float) -> int:
    """Return the most views whose total time per megapixel stays within ``target``.

    ``seconds_per_megapixel`` is the measured time of one view. One view is the
    floor, even when it alone misses the target.
    """
    fitting = [
        count for count in VIEW_COUNTS if count * seconds_per_megapixel <= target
    ]
    return max(fitting, default=1)
