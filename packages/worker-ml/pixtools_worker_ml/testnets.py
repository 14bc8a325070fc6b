"""Small denoisers with random weights, for tests that need a network quickly."""

from __future__ import annotations

import torch
from torch import nn

from pixtools_worker_ml.model import DenoiseNet, ModelConfig


def random_network(
    config: ModelConfig,
    *,
    seed: int,
    weight_std: float,
    bias_std: float,
    bias_mean: float = 0.0,
) -> DenoiseNet:
    """Build an eval-mode network with normally distributed weights in each convolution.

    Random biases as well as weights give non-zero activations in every layer, so
    int8 rounding and bias shifts have something to act on.
    """
    torch.manual_seed(seed)
    model = DenoiseNet(config)

    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.bias is not None:
            nn.init.normal_(module.weight, std=weight_std)
            nn.init.normal_(module.bias, mean=bias_mean, std=bias_std)

    return model.eval()
