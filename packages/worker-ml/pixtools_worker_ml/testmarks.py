"""Skip marks for tests that need oneDNN's int8 convolutions."""

from __future__ import annotations

import pytest
import torch

from pixtools_worker_ml.int8net import kernels_available, kernels_exact

needs_int8_kernels = pytest.mark.skipif(
    "onednn" not in torch.backends.quantized.supported_engines
    or not kernels_available(),
    reason="this torch build has no oneDNN int8 convolutions",
)

# Sums saturate per pair of products, so the 64-channel probe covers every width.
needs_exact_int8_sums = pytest.mark.skipif(
    not kernels_exact(), reason="this CPU's int8 convolutions saturate (no VNNI)"
)
