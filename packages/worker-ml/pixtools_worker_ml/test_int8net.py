from __future__ import annotations

import pytest
import torch
from structlog.testing import capture_logs
from torch.nn import functional

from pixtools_worker_ml.data import add_gaussian_noise
from pixtools_worker_ml.int8net import (
    Int8Block,
    Int8DenoiseNet,
    kernels_exact,
    sum_products,
    uint8_codes,
)
from pixtools_worker_ml.model import DenoiseNet, ModelConfig
from pixtools_worker_ml.quantize import quantize
from pixtools_worker_ml.testimages import synthetic_photo
from pixtools_worker_ml.testmarks import (
    exact_range,
    needs_exact_range,
    needs_int8_kernels,
)
from pixtools_worker_ml.testnets import random_network

pytestmark = needs_int8_kernels


def small_model() -> DenoiseNet:
    """Build a 2-block network with random non-zero weights in every convolution."""
    return random_network(
        ModelConfig(width=8, blocks=2), seed=3, weight_std=0.1, bias_std=0.01
    )


def noisy_batches(count: int = 4) -> list[torch.Tensor]:
    batches = []
    for index in range(count):
        clean = synthetic_photo(32, 40, seed=index)
        noisy = add_gaussian_noise(clean, 10.0 + 10.0 * index, seed=index)
        batches.append(torch.from_numpy(noisy).permute(2, 0, 1)[None].contiguous())
    return batches


def rounded(values: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    codes = torch.clamp(torch.round(values / scale) + zero_point, 0, 255)
    return (codes - zero_point) * scale


def reference(
    model: DenoiseNet, net: Int8DenoiseNet, noisy: torch.Tensor
) -> torch.Tensor:
    """Return the int8 network's expected output: float32 with the same roundings."""
    stream = functional.relu(model.head(functional.pixel_unshuffle(noisy, 2)))
    for block in net.blocks:
        assert isinstance(block, Int8Block)
        first, second = block.first, block.second
        source = rounded(stream, first.source.scale, first.source.zero_point)
        weight = torch.dequantize(first.weights)
        middle = functional.relu(
            functional.conv2d(source, weight, first.bias, padding=1)
        )
        middle = rounded(middle, block.middle.scale, block.middle.zero_point)
        weight = torch.dequantize(second.weights)
        stream = stream + functional.conv2d(middle, weight, second.bias, padding=1)
    noise = functional.pixel_shuffle(model.tail(functional.relu(stream)), 2)
    return noisy - noise


@needs_exact_range
def test_blocks_round_only_inputs_and_middle() -> None:
    model = small_model()
    graph = quantize(model, noisy_batches(), exact_range())
    net = Int8DenoiseNet.from_graph(model, graph)
    probe = noisy_batches(1)[0]

    with torch.inference_mode():
        output = net(probe)
        expected = reference(model, net, probe)

    # Sums in another order can cross a rounding boundary and move a few outputs.
    difference = (output - expected).abs()
    assert float(difference.mean()) < 1e-4
    assert float(difference.max()) < 5e-3


@needs_exact_range
def test_float_block_outputs_beat_graph() -> None:
    model = small_model()
    graph = quantize(model, noisy_batches(), exact_range())
    net = Int8DenoiseNet.from_graph(model, graph)
    probe = noisy_batches(1)[0]

    with torch.inference_mode():
        exact = model(probe)
        graph_error = float((graph(probe) - exact).abs().mean())
        net_error = float((net(probe) - exact).abs().mean())

    # The graph also rounds each block output to 8 bits, and the network does not.
    assert net_error < graph_error


def test_graph_of_other_layout_rejected() -> None:
    model = small_model()
    graph = quantize(model, noisy_batches())
    deeper = DenoiseNet(ModelConfig(width=8, blocks=3))

    with pytest.raises(ValueError, match="no convolutions for block 2"):
        Int8DenoiseNet.from_graph(deeper, graph)


def test_uint8_codes_share_memory() -> None:
    values = torch.randn(1, 8, 6, 10).contiguous(memory_format=torch.channels_last)
    quantized = torch.quantize_per_tensor(values, 0.02, 120, torch.quint8)

    codes = uint8_codes(quantized)

    assert codes.dtype == torch.uint8
    assert codes.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(codes, quantized.int_repr())
    assert codes.untyped_storage().data_ptr() == quantized.untyped_storage().data_ptr()


@needs_exact_range
@pytest.mark.parametrize("size", [(2, 2), (2, 14), (6, 4), (66, 38)])
def test_small_inputs_keep_shape(size: tuple[int, int]) -> None:
    model = small_model()
    graph = quantize(model, noisy_batches(), exact_range())
    net = Int8DenoiseNet.from_graph(model, graph)
    height, width = size
    noisy = torch.rand(1, 3, height, width)

    with torch.inference_mode():
        output = net(noisy)
        expected = reference(model, net, noisy)

    assert output.shape == noisy.shape
    assert bool(torch.isfinite(output).all())
    assert float((output - expected).abs().max()) < 5e-3


def test_exactness_check_matches_random_sums() -> None:
    generator = torch.Generator().manual_seed(5)
    weights = torch.randint(-127, 128, (64, 64, 3, 3), generator=generator)
    codes = torch.randint(0, 256, (1, 64, 12, 12), generator=generator)

    sums = sum_products(weights.to(torch.int8), codes.to(torch.uint8), padding=1)
    exact = functional.conv2d(codes.double(), weights.double(), padding=1)

    # float32 represents every integer below 2**24, so exact kernels match to 0.5.
    assert float(exact.abs().max()) < 2**24
    matches = bool(torch.allclose(sums.double(), exact, rtol=0.0, atol=0.5))
    assert kernels_exact() == matches


def test_exactness_check_false_when_kernel_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*arguments: object) -> None:
        raise RuntimeError("no kernel for this CPU")

    kernels_exact.cache_clear()
    monkeypatch.setattr(torch.ops.onednn, "qconv_prepack", broken)
    try:
        with capture_logs() as logs:
            exact = kernels_exact(16)
    finally:
        kernels_exact.cache_clear()

    assert exact is False
    assert [entry["event"] for entry in logs] == ["int8_check_failed"]
    assert logs[0]["error"] == "no kernel for this CPU"
