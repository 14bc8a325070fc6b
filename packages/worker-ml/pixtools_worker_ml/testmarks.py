"""Skip marks for tests that need oneDNN's int8 convolutions."""

from __future__ import annotations

import pytest
import torch

from pixtools_worker_ml.int8net import kernels_available
from pixtools_worker_ml.int8pairs import WeightRange, exact_weight_range

needs_int8_kernels = pytest.mark.skipif(
    "onednn" not in torch.backends.quantized.supported_engines
    or not kernels_available(),
    reason="this torch build has no oneDNN int8 convolutions",
)

# The int8 weight range that this CPU sums exactly: "full" with VNNI or AMX,
# "pairs" with AVX2 only, None where int8 would be wrong. Sums saturate per pair
# of products, so the 64-channel probes cover every width.
EXACT_RANGE = exact_weight_range() if kernels_available() else None
needs_exact_range = pytest.mark.skipif(
    EXACT_RANGE is None,
    reason="this CPU's int8 convolutions saturate even for pair-limited weights",
)


def exact_range() -> WeightRange:
    """Return EXACT_RANGE in a test that ``needs_exact_range`` guards."""
    assert EXACT_RANGE is not None
    return EXACT_RANGE
