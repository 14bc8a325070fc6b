"""Pair-limited int8 weights, which oneDNN sums exactly on CPUs without VNNI.

On CPUs with AVX2 but no VNNI, oneDNN's int8 convolution multiplies uint8 codes by
int8 weights with an instruction that adds the products of input channels 2k and
2k+1 in 16 bits, saturating at 32,767 (see ``int8net.kernels_exact``). With full
range weights a pair can reach 2 x 255 x 128 = 65,280, so the int8 network is
wrong there.

Saturation cannot happen when the magnitudes of every such pair of weight codes add
up to at most 128, because 255 x 128 = 32,640. ``PairLimitedObserver`` picks each
output channel's scale as its largest pair sum |w[2k]| + |w[2k+1]| divided by 127,
so rounding keeps every pair sum at or below 128. That scale is never coarser
than 7-bit weights (max |w| / 63), since a pair sum is at most twice the largest
weight. When a channel's largest weight is paired with a zero it is max |w| / 127,
within 0.4 % of torch's full range scale (max |w| / 127.5).

On CBSD68 with float input and the run 14 weights, the int8 loss against float32
at sigma 15 / 25 / 50 was 0.015 / 0.010 / 0.009 dB with pair-limited weights,
0.027 / 0.018 / 0.018 dB with 7-bit weights and 0.022 / 0.014 / 0.009 dB with 7-bit
activations (one-off comparisons on an AMD EPYC with AVX2 only, torch 2.13). Full
range weights lost 0.012 / 0.008 / 0.008 dB on a CPU with VNNI, so those CPUs keep
the full range file.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import structlog
import torch
from torch.ao.quantization.observer import PerChannelMinMaxObserver
from torch.nn import functional

from pixtools_worker_ml.int8net import kernels_available, kernels_exact, sum_products

logger = structlog.get_logger(__name__)

WeightRange = Literal["full", "pairs"]
WEIGHT_RANGES: tuple[WeightRange, ...] = ("full", "pairs")
# The largest |code[2k]| + |code[2k+1]| whose products with uint8 codes fit in 16
# bits: 255 x 128 = 32,640 <= 32,767.
PAIR_LIMIT = 128


def pair_sums(weights: torch.Tensor) -> torch.Tensor:
    """Return |w[:, 2k]| + |w[:, 2k+1]| for (out, in, kh, kw) weights.

    An odd input channel count pairs the last channel with a zero.
    """
    # float first: abs() of an int8 code of -128 is still -128.
    magnitudes = weights.detach().float().abs()
    if magnitudes.shape[1] % 2:
        magnitudes = functional.pad(magnitudes, (0, 0, 0, 0, 0, 1))
    return magnitudes[:, 0::2] + magnitudes[:, 1::2]


def pairs_fit(codes: torch.Tensor) -> bool:
    """Return True when every pair of int8 weight codes is within PAIR_LIMIT."""
    return bool(pair_sums(codes).max() <= PAIR_LIMIT)


class PairLimitedObserver(PerChannelMinMaxObserver):
    """Per-channel symmetric int8 weight observer that keeps pair sums <= 128.

    The scale of output channel c is max_k (|w[c, 2k]| + |w[c, 2k+1]|) / 127
    over all kernel positions, so that rounding each weight adds at most 0.5 to
    either code of a pair.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", torch.qint8)
        kwargs.setdefault("qscheme", torch.per_channel_symmetric)
        super().__init__(**kwargs)
        self.largest_pair: torch.Tensor
        self.register_buffer("largest_pair", torch.tensor([]))

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        weights = super().forward(weights)
        sums = pair_sums(weights).amax(dim=(1, 2, 3))
        if self.largest_pair.numel():
            sums = torch.maximum(sums, self.largest_pair)
        self.largest_pair = sums
        return weights

    def calculate_qparams(self, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.largest_pair.numel():
            raise RuntimeError("PairLimitedObserver has seen no weights")
        scales = (self.largest_pair / 127).clamp(min=torch.finfo(torch.float32).eps)
        return scales, torch.zeros(scales.shape, dtype=torch.int64)


@functools.cache
def pair_kernels_exact(channels: int = 64) -> bool:
    """Return True when oneDNN sums pair-limited int8 weights exactly here.

    Every pair (2k, 2k+1) of the test weights adds up to 128 in magnitude, or 127
    where a code of 128 is clipped, with random signs and splits. Many of the
    pairs (2k+1, 2k+2) that a different grouping would form add up to more.
    Convolving codes of 255, which give the largest sums, and seeded random
    codes must return the exact integer sums.
    """
    if not kernels_available():
        return False
    generator = torch.Generator().manual_seed(0)
    pairs = (channels + 1) // 2
    shape = (channels, pairs, 3, 3)
    first = torch.randint(0, PAIR_LIMIT + 1, shape, generator=generator)
    signs = torch.randint(0, 2, (2, *shape), generator=generator) * 2 - 1
    weights = torch.empty((channels, 2 * pairs, 3, 3), dtype=torch.int64)
    weights[:, 0::2] = first * signs[0]
    weights[:, 1::2] = (PAIR_LIMIT - first) * signs[1]
    # An odd channel count drops the second half of the last pair.
    weights = weights[:, :channels].clamp(-128, 127).to(torch.int8)

    full = torch.full((1, channels, 4, 4), 255, dtype=torch.uint8)
    random = torch.randint(
        0, 256, (1, channels, 6, 6), generator=generator, dtype=torch.uint8
    )
    for codes in (full, random):
        try:
            sums = sum_products(weights, codes, padding=1)
        except RuntimeError as error:
            logger.warning(
                "int8_pair_check_failed", channels=channels, error=str(error)
            )
            return False
        exact = functional.conv2d(codes.double(), weights.double(), padding=1)
        if not torch.equal(sums.double(), exact):
            return False
    return True


def exact_weight_range(channels: int = 64) -> WeightRange | None:
    """Return the int8 weight range this CPU sums exactly, the full one first.

    None means neither: int8 would be wrong here.
    """
    if kernels_exact(channels):
        return "full"
    if pair_kernels_exact(channels):
        return "pairs"
    return None
