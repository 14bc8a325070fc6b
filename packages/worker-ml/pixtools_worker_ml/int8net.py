"""The int8 denoiser that runs in the worker: oneDNN int8 convolutions, float stream.

``quantize`` calibrates and stores the int8 network as a torch FX graph. Run as it is,
that graph rounds every block's output to 8 bits (one scale per tensor) before adding
it to the float stream. On the 12 CBSD68 validation crops of the training log, that
rounding cost 0.067 dB of the 0.080 dB that int8 lost against float32 at sigma 15.

This module runs the same weights and scales through oneDNN's int8 convolution
directly. The first convolution of a block reads the stream quantized to 8 bits and
writes 8-bit codes after its ReLU, as in the graph. The second one writes float32,
which is added to the stream in place, so the block output is never rounded. The
stored int8 files stay as they are. On those crops the loss against float32 fell
from 0.080/0.046/0.026 dB to 0.013/0.007/0.007 dB at sigma 15/25/50 (one-off
comparisons on an AMD EPYC while the change was made). With the same weights the
evaluation program's int8 scores on all of CBSD68 rose from 33.73/31.11/27.75 to
33.81/31.15/27.77 dB, and bench/bench_denoise.py ran at 0.73 to 0.79 s per megapixel
on two threads against 0.74 to 0.76 through the graph.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import structlog
import torch
from torch import nn
from torch.ao.nn.intrinsic.quantized import ConvReLU2d as QuantizedConvReLU2d
from torch.ao.nn.quantized import Conv2d as QuantizedConv2d
from torch.fx import GraphModule, Node
from torch.nn import functional

from pixtools_worker_ml.model import DenoiseNet

logger = structlog.get_logger(__name__)
ONEDNN_OPS = ("qconv_prepack", "qconv2d_pointwise")


def kernels_available() -> bool:
    """Return True when this torch build has oneDNN's int8 convolution operators."""
    return all(hasattr(torch.ops.onednn, name) for name in ONEDNN_OPS)


def sum_products(
    weights: torch.Tensor, codes: torch.Tensor, padding: int
) -> torch.Tensor:
    """Convolve uint8 ``codes`` with int8 ``weights`` in oneDNN, all scales 1.

    Returns the integer sums of products as float32, one 3x3 convolution with
    stride 1 and ``padding`` pixels of zeros on each side.
    """
    channels = weights.shape[0]
    scales = torch.ones(channels)
    zero_points = torch.zeros(channels, dtype=torch.long)
    stride, margins, dilation = [1, 1], [padding, padding], [1, 1]
    packed = torch.ops.onednn.qconv_prepack(
        weights, scales, 1.0, 0, stride, margins, dilation, 1, None
    )
    sums: torch.Tensor = torch.ops.onednn.qconv2d_pointwise(
        codes.contiguous(memory_format=torch.channels_last),
        1.0,
        0,
        packed,
        scales,
        zero_points,
        None,
        stride,
        margins,
        dilation,
        1,
        1.0,
        0,
        torch.float32,
        "none",
        [],
        "",
    )
    return sums


@functools.cache
def kernels_exact(channels: int = 64) -> bool:
    """Return True when oneDNN's int8 convolution sums its products exactly here.

    On CPUs without VNNI, oneDNN's kernels add each pair of uint8-by-int8 products
    in 16 bits, which saturates at 32,767 (torch warns of accuracy issues there).
    This convolves codes of 255 with weights of 127, a pair of 64,770, and compares
    the result with the exact sum. On an AMD EPYC with AVX2 and no VNNI (torch
    2.13) every output was 288 pairs of 32,767 instead of 576 products of 32,385.
    """
    if not kernels_available():
        return False
    weights = torch.full((channels, channels, 3, 3), 127, dtype=torch.int8)
    codes = torch.full((1, channels, 4, 4), 255, dtype=torch.uint8)
    try:
        sums = sum_products(weights, codes, padding=0)
    except RuntimeError as error:
        logger.warning("int8_check_failed", channels=channels, error=str(error))
        return False

    exact = 255 * 127 * 9 * channels
    return bool(torch.all(torch.abs(sums - exact) <= exact * 1e-6))


@dataclass(frozen=True)
class Codes:
    """Scale and zero point of 8-bit codes: value = scale * (code - zero_point)."""

    scale: float
    zero_point: int


class PackedConv:
    """One int8 convolution with per-channel weights, prepacked for oneDNN."""

    def __init__(self, conv: QuantizedConv2d, source: Codes) -> None:
        self.weights = conv.weight()
        self.source = source
        self.scales = self.weights.q_per_channel_scales().float()
        self.zero_points = self.weights.q_per_channel_zero_points()
        self.bias = conv.bias()
        self.stride = list(conv.stride)
        self.padding = list(conv.padding)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups
        self.relu = isinstance(conv, QuantizedConvReLU2d)
        self.packed = torch.ops.onednn.qconv_prepack(
            self.weights.int_repr(),
            self.scales,
            source.scale,
            source.zero_point,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            None,
        )

    def __call__(self, codes: torch.Tensor, output: Codes | None) -> torch.Tensor:
        """Convolve uint8 ``codes`` into codes of ``output``, or float32 without it."""
        if output is None:
            scale, zero_point, dtype = 1.0, 0, torch.float32
        else:
            scale, zero_point, dtype = output.scale, output.zero_point, None
        result: torch.Tensor = torch.ops.onednn.qconv2d_pointwise(
            codes,
            self.source.scale,
            self.source.zero_point,
            self.packed,
            self.scales,
            self.zero_points,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            scale,
            zero_point,
            dtype,
            "relu" if self.relu else "none",
            [],
            "",
        )
        return result


class Int8Block(nn.Module):
    """A residual block whose convolutions run in int8 and whose output stays float."""

    def __init__(self, first: PackedConv, second: PackedConv, middle: Codes) -> None:
        super().__init__()
        self.first = first
        self.second = second
        self.middle = middle

    def middle_codes(self, stream: torch.Tensor) -> torch.Tensor:
        """Return the first convolution's 8-bit output codes (after its ReLU)."""
        source = self.first.source
        codes = uint8_codes(
            torch.quantize_per_tensor(
                stream, source.scale, source.zero_point, torch.quint8
            )
        )
        return self.first(codes, self.middle)

    def residual(self, stream: torch.Tensor) -> torch.Tensor:
        """Return what the block adds to ``stream``, without adding it."""
        return self.second(self.middle_codes(stream), None)

    def forward(self, stream: torch.Tensor) -> torch.Tensor:
        stream += self.residual(stream)
        return stream


class Int8DenoiseNet(nn.Module):
    """DenoiseNet with int8 residual blocks and a float32 head, tail and stream."""

    def __init__(self, model: DenoiseNet, blocks: list[Int8Block]) -> None:
        super().__init__()
        self.config = model.config
        self.head = model.head
        self.tail = model.tail
        self.blocks = nn.ModuleList(blocks)
        # "full" or "pairs": which int8 file the weights came from (see int8pairs).
        self.weight_range = "full"

    @classmethod
    def from_graph(cls, model: DenoiseNet, graph: GraphModule) -> Int8DenoiseNet:
        """Build the network from ``model``'s float parts and the int8 ``graph``.

        Raises ValueError when the graph does not have the layout ``quantize``
        makes: each block's first convolution reading a per-tensor quantize of the
        stream, and the second one reading the first.
        """
        nodes = {str(node.target): node for node in graph.graph.nodes}
        blocks = []
        for index in range(model.config.blocks):
            first_node = nodes.get(f"blocks.{index}.first")
            second_node = nodes.get(f"blocks.{index}.second")
            if first_node is None or second_node is None:
                raise ValueError(
                    f"the int8 graph has no convolutions for block {index}"
                )
            first = graph.get_submodule(str(first_node.target))
            second = graph.get_submodule(str(second_node.target))
            if not isinstance(first, QuantizedConvReLU2d):
                raise ValueError(
                    f"the first int8 convolution of block {index} has no ReLU"
                )
            fused = isinstance(second, QuantizedConvReLU2d)
            if not isinstance(second, QuantizedConv2d) or fused:
                raise ValueError(
                    f"the second convolution of block {index} is not a plain int8 "
                    "convolution"
                )

            source = stream_codes(graph, first_node)
            middle = Codes(float(first.scale), int(first.zero_point))
            blocks.append(
                Int8Block(PackedConv(first, source), PackedConv(second, middle), middle)
            )
        return cls(model, blocks).eval()

    def convolutions(self) -> Iterator[PackedConv]:
        """Yield the int8 convolutions, two per block in order."""
        for block in self.blocks:
            assert isinstance(block, Int8Block)
            yield block.first
            yield block.second

    def scales_valid(self) -> bool:
        """Return True when every weight and activation scale is finite and positive."""
        for block in self.blocks:
            assert isinstance(block, Int8Block)
            activations = torch.tensor(
                [block.first.source.scale, block.second.source.scale]
            )
            for values in (activations, block.first.scales, block.second.scales):
                if not bool(torch.isfinite(values).all() and (values > 0).all()):
                    return False
        return True

    def features(self, noisy: torch.Tensor) -> torch.Tensor:
        """Return the float stream that enters the first block."""
        scale = self.config.scale
        features = functional.relu(self.head(functional.pixel_unshuffle(noisy, scale)))
        # oneDNN's int8 convolutions work channels-last, so converting once here
        # avoids a reorder before each of them.
        return features.contiguous(memory_format=torch.channels_last)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        scale = self.config.scale
        stream = self.features(noisy)
        for block in self.blocks:
            stream = block(stream)
        noise = functional.pixel_shuffle(self.tail(functional.relu(stream)), scale)
        return noisy - noise


def uint8_codes(quantized: torch.Tensor) -> torch.Tensor:
    """Return the codes of a quint8 tensor as a uint8 tensor on the same memory.

    ``int_repr()`` copies them. With 64 channels on a 528x528 tile that copy took
    1.4 ms a block, five times the quantization itself, or about 7 % of the
    network's time (timed once with torch 2.13 on an AMD EPYC, 2 threads).
    """
    return torch.empty(0, dtype=torch.uint8).set_(
        quantized.untyped_storage(),
        quantized.storage_offset(),
        quantized.size(),
        quantized.stride(),
    )


def stream_codes(graph: GraphModule, first: Node) -> Codes:
    """Return the scale and zero point of the quantize that feeds ``first``."""
    quantize = first.args[0]
    if (
        not isinstance(quantize, Node)
        or quantize.target is not torch.quantize_per_tensor
        or len(quantize.args) < 3
    ):
        raise ValueError(f"{first.target} does not read a per-tensor quantize")
    values = []
    for argument in quantize.args[1:3]:
        if not isinstance(argument, Node) or argument.op != "get_attr":
            raise ValueError(f"the quantize before {first.target} has no stored scale")
        values.append(getattr(graph, str(argument.target)))
    return Codes(float(values[0]), int(values[1]))
