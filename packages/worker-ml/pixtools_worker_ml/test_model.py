from __future__ import annotations

import pytest
import torch

from pixtools_worker_ml.model import (
    DenoiseNet,
    ModelConfig,
    ResidualBlock,
    count_parameters,
    deepen,
    receptive_radius,
)


def test_default_parameter_count() -> None:
    model = DenoiseNet()

    assert count_parameters(model) == 1_047_884
    assert model.config.convolutions == 30
    assert receptive_radius(model.config) == 62


def test_untrained_model_is_near_identity() -> None:
    sample = torch.rand(1, 3, 32, 32)

    output = DenoiseNet().eval()(sample)

    assert output.shape == sample.shape
    assert (output - sample).abs().mean() < 0.02
    assert (output - sample).abs().max() < 0.2


def test_config_round_trips_through_dict() -> None:
    config = ModelConfig(width=8, blocks=2)

    assert ModelConfig.from_dict(config.to_dict()) == config


def test_output_depends_only_on_receptive_field() -> None:
    torch.manual_seed(0)
    model = DenoiseNet(ModelConfig(width=8, blocks=2))
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    radius = receptive_radius(model.config)
    sample = torch.rand(1, 3, 2 * radius + 40, 2 * radius + 40)
    changed = sample.clone()
    changed[..., :, -1] = 0.0

    difference = (model(sample) - model(changed)).abs().sum(dim=(0, 1, 2))

    assert difference[-1] > 0
    assert torch.all(difference[: -radius - 1] == 0)


def test_negative_blocks_are_rejected() -> None:
    with pytest.raises(ValueError, match="blocks must not be negative"):
        DenoiseNet(ModelConfig(blocks=-1))


def test_deepened_model_keeps_output() -> None:
    torch.manual_seed(0)
    model = DenoiseNet(ModelConfig(width=8, blocks=2)).eval()
    for block in model.blocks:
        assert isinstance(block, ResidualBlock)
        torch.nn.init.normal_(block.second.weight, std=0.1)
    sample = torch.rand(1, 3, 24, 24)

    deeper = deepen(model, 4).eval()

    assert deeper.config.blocks == 4
    assert count_parameters(deeper) > count_parameters(model)
    assert torch.allclose(deeper(sample), model(sample), atol=1e-6)


def test_deepen_rejects_fewer_blocks() -> None:
    with pytest.raises(ValueError, match="invalid block count 2"):
        deepen(DenoiseNet(ModelConfig(width=8, blocks=3)), 2)
