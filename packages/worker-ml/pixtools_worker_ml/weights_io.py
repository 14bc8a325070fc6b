"""Save and load the exported denoiser weights (state_dict plus architecture JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from pixtools_worker_ml.model import DenoiseNet, ModelConfig


def config_path_for(weights_path: Path) -> Path:
    return weights_path.with_suffix(".json")


def save_weights(
    state_dict: dict[str, torch.Tensor],
    config: ModelConfig,
    weights_path: Path,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write float32 weights and ``<name>.json`` atomically, side by side."""
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().float().cpu() for key, value in state_dict.items()}
    temporary = weights_path.with_suffix(".pt.tmp")
    torch.save(tensors, temporary)
    temporary.replace(weights_path)

    description = {"architecture": "DenoiseNet", "config": config.to_dict()}
    description["training"] = metadata or {}
    json_path = config_path_for(weights_path)
    json_temporary = json_path.with_suffix(".json.tmp")
    json_temporary.write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
    json_temporary.replace(json_path)


def load_weights(weights_path: Path) -> DenoiseNet:
    """Build the network described by the JSON beside the weights and load them."""
    json_path = config_path_for(weights_path)
    if not weights_path.is_file() or not json_path.is_file():
        raise FileNotFoundError(
            f"denoiser weights not found: {weights_path} and {json_path} are both "
            "needed; export them with python -m pixtools_worker_ml.train "
            "--export-only or point DENOISE_MODEL_PATH at an exported file"
        )
    description = json.loads(json_path.read_text())
    config = ModelConfig.from_dict(description["config"])
    model = DenoiseNet(config)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
