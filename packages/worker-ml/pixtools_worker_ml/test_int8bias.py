from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from pixtools_worker_ml import quantize as quantize_program
from pixtools_worker_ml.data import add_gaussian_noise
from pixtools_worker_ml.inference import bundled_weights_path
from pixtools_worker_ml.int8bias import ChannelMean, correct_biases
from pixtools_worker_ml.int8net import (
    Int8Block,
    Int8DenoiseNet,
)
from pixtools_worker_ml.model import DenoiseNet, ModelConfig, ResidualBlock
from pixtools_worker_ml.quantize import load_quantized, quantize, save_quantized
from pixtools_worker_ml.testimages import synthetic_photo
from pixtools_worker_ml.testmarks import (
    exact_range,
    needs_exact_range,
    needs_int8_kernels,
)
from pixtools_worker_ml.testnets import random_network
from pixtools_worker_ml.weights_io import load_weights

pytestmark = needs_int8_kernels


def random_model() -> DenoiseNet:
    """Build a 3-block network whose int8 rounding shifts the channel means."""
    return random_network(
        ModelConfig(width=16, blocks=3),
        seed=4,
        weight_std=0.08,
        bias_mean=0.02,
        bias_std=0.02,
    )


def noisy_crops(count: int, size: int, seed: int = 0) -> list[torch.Tensor]:
    crops = []
    for index in range(count):
        clean = synthetic_photo(size, size, seed=seed + index)
        sigma = 10.0 + 40.0 * index / max(count - 1, 1)
        noisy = add_gaussian_noise(clean, sigma, seed=seed + index)
        crops.append(torch.from_numpy(noisy).permute(2, 0, 1)[None].contiguous())
    return crops


def first_block_gap(
    model: DenoiseNet, net: Int8DenoiseNet, crops: list[torch.Tensor]
) -> torch.Tensor:
    """Return int8 minus float32 of the first block's mean residual per channel."""
    float_block, int8_block = model.blocks[0], net.blocks[0]
    assert isinstance(float_block, ResidualBlock)
    assert isinstance(int8_block, Int8Block)
    gap = ChannelMean()
    with torch.inference_mode():
        for crop in crops:
            stream = net.features(crop)
            expected = float_block.residual(stream)
            gap.add(int8_block.residual(stream) - expected)
    return gap.mean()


def test_channel_mean_weights_by_positions() -> None:
    mean = ChannelMean()
    mean.add(torch.ones(1, 2, 1, 1))
    mean.add(torch.zeros(1, 2, 1, 3))

    assert torch.allclose(mean.mean(), torch.full((2,), 0.25))
    with pytest.raises(ValueError, match="no values"):
        ChannelMean().mean()


@needs_exact_range
def test_corrected_first_block_matches_float_means() -> None:
    model = random_model()
    crops = noisy_crops(4, 48)
    graph = quantize(model, crops, exact_range())
    before = first_block_gap(model, Int8DenoiseNet.from_graph(model, graph), crops)

    shifts = correct_biases(model, graph, crops)
    after = first_block_gap(model, Int8DenoiseNet.from_graph(model, graph), crops)

    assert [shift.block for shift in shifts] == [0, 1, 2]
    assert all(shift.first > 0.0 for shift in shifts)
    assert all(shift.second > 0.0 for shift in shifts)
    # The block's own crops define the correction, so its mean gap closes.
    assert float(after.abs().max()) < 1e-5
    assert float(before.abs().max()) > 20 * float(after.abs().max())


@needs_exact_range
def test_correction_reduces_bundled_int8_error() -> None:
    with bundled_weights_path() as path:
        model = load_weights(path)
    crops = noisy_crops(6, 96)
    held_out = noisy_crops(3, 128, seed=50)
    graph = quantize(model, crops, exact_range())
    uncorrected = Int8DenoiseNet.from_graph(model, graph)

    correct_biases(model, graph, crops)
    corrected = Int8DenoiseNet.from_graph(model, graph)

    def error(net: Int8DenoiseNet) -> float:
        with torch.inference_mode():
            return sum(
                float(torch.mean((net(crop) - model(crop)) ** 2)) for crop in held_out
            )

    assert error(corrected) < error(uncorrected)


@needs_exact_range
def test_corrected_biases_are_saved(tmp_path: Path) -> None:
    with bundled_weights_path() as bundled:
        weights = tmp_path / "model.pt"
        shutil.copyfile(bundled, weights)
        shutil.copyfile(bundled.with_suffix(".json"), weights.with_suffix(".json"))
    model = load_weights(weights)
    crops = noisy_crops(2, 64)
    graph = quantize(model, crops, exact_range())
    uncorrected = Int8DenoiseNet.from_graph(model, graph)

    correct_biases(model, graph, crops)
    metadata = {"crops": 2, "bias_correction": True}
    save_quantized(graph, weights, metadata, exact_range())
    loaded = load_quantized(load_weights(weights), weights)

    for old, new in zip(uncorrected.blocks, loaded.blocks, strict=True):
        assert isinstance(old, Int8Block)
        assert isinstance(new, Int8Block)
        assert not torch.equal(old.second.bias, new.second.bias)
    expected = Int8DenoiseNet.from_graph(model, graph)
    with torch.inference_mode():
        assert torch.equal(expected(crops[0]), loaded(crops[0]))


def test_no_batches_rejected() -> None:
    model = random_model()
    graph = quantize(model, noisy_crops(1, 32))

    with pytest.raises(ValueError, match="at least one batch"):
        correct_biases(model, graph, [])


def test_quantize_program_stops_where_sums_saturate(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "CBSD432").mkdir()
    with bundled_weights_path() as bundled:
        weights = tmp_path / "model.pt"
        shutil.copyfile(bundled, weights)
        shutil.copyfile(bundled.with_suffix(".json"), weights.with_suffix(".json"))
    monkeypatch.setattr(quantize_program, "exact_weight_range", lambda width: None)

    status = quantize_program.main(
        ["--datasets-dir", str(tmp_path), "--weights", str(weights)]
    )

    assert status == 2
    assert "saturate" in capsys.readouterr().err
    assert not quantize_program.int8_path_for(weights).exists()
    assert not quantize_program.int8_path_for(weights, "pairs").exists()
