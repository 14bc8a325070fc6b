"""Blind colour denoising network: residual conv blocks on pixel-unshuffled input.

The image (N, 3, H, W) in [0, 1] is folded by space-to-depth with factor 2 into
(N, 12, H/2, W/2), so every 3x3 convolution runs on a quarter of the pixel positions
and covers a 6x6 pixel neighbourhood. A head convolution with ReLU lifts the 12
channels to ``width``, ``blocks`` residual blocks (conv, ReLU, conv, plus the block
input) follow, and after a ReLU a tail convolution maps back to 12 channels. That
prediction of the folded noise is unfolded by depth-to-space and subtracted from the
input (residual learning). No noise level is given to the network: one model covers
every sigma it was trained on.

The identity skips and the zero-initialised second convolution of every block make
the untrained stack an identity map, so it trains from the first steps; a plain
20-layer stack on this folded input barely moved in its first 800 Adam steps here.

With the defaults (width 64, 14 blocks: 30 convolutions) the network has 1,047,884
parameters (4.2 MB as float32) and costs about 0.26 M multiply-accumulates per
output pixel, 40 % of the 20-layer 64-channel DnCNN (0.66 M).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyperparameters, stored next to the weights as JSON."""

    channels: int = 3
    width: int = 64
    blocks: int = 14
    scale: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(
            channels=int(data["channels"]),
            width=int(data["width"]),
            blocks=int(data["blocks"]),
            scale=int(data["scale"]),
        )

    @property
    def convolutions(self) -> int:
        return 2 * self.blocks + 2


class ResidualBlock(nn.Module):
    """conv 3x3, ReLU, conv 3x3, plus the block input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(width, width, 3, padding=1)
        self.second = nn.Conv2d(width, width, 3, padding=1)

    def middle(self, features: torch.Tensor) -> torch.Tensor:
        """Return the first convolution's output after its ReLU."""
        return functional.relu(self.first(features))

    def residual(self, features: torch.Tensor) -> torch.Tensor:
        """Return what the block adds to ``features``."""
        return self.second(self.middle(features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.residual(features)


class DenoiseNet(nn.Module):
    """Residual denoiser; inputs need height and width divisible by ``scale``."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        if self.config.blocks < 0:
            raise ValueError(f"blocks must not be negative, got {self.config.blocks}")

        folded = self.config.channels * self.config.scale**2
        width = self.config.width
        self.head = nn.Conv2d(folded, width, 3, padding=1)
        self.blocks = nn.Sequential(
            *(ResidualBlock(width) for _ in range(self.config.blocks))
        )
        self.tail = nn.Conv2d(width, folded, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal convolutions, zero second conv per block, a near-zero tail.

        The untrained network then returns its input almost unchanged.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            assert isinstance(block, ResidualBlock)
            nn.init.zeros_(block.second.weight)
        nn.init.normal_(self.tail.weight, std=1e-3)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        scale = self.config.scale
        features = functional.relu(self.head(functional.pixel_unshuffle(noisy, scale)))
        features = functional.relu(self.blocks(features))
        noise = functional.pixel_shuffle(self.tail(features), scale)
        return noisy - noise


def deepen(model: DenoiseNet, blocks: int) -> DenoiseNet:
    """Return a copy of ``model`` with residual blocks appended up to ``blocks``.

    The appended blocks get a He-normal first convolution and a zero second one, so
    they pass their input through unchanged and the deeper network computes exactly
    what ``model`` did. Training then starts from the trained weights with the extra
    depth free to learn.
    """
    if blocks < model.config.blocks:
        raise ValueError(
            f"invalid block count {blocks}: the model already has "
            f"{model.config.blocks} blocks, so pass at least that many"
        )

    deeper = DenoiseNet(replace(model.config, blocks=blocks))
    missing, unexpected = deeper.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("blocks.") for key in missing):
        raise ValueError(
            f"deepening failed because the weights do not fit the deeper model: "
            f"missing {missing}, unexpected {unexpected}"
        )
    return deeper


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def receptive_radius(config: ModelConfig) -> int:
    """Return how many input pixels beyond a tile edge can change an output pixel."""
    return config.convolutions * config.scale + config.scale
