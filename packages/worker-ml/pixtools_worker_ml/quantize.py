"""Post-training int8 quantization of the denoiser, for CPUs without fast bfloat16.

    python -m pixtools_worker_ml.quantize --datasets-dir DIR [--weights FILE]

On CPUs without AMX or AVX-512 BF16, bfloat16 runs slower than float32, and float32
costs about 3 s per megapixel on one core. oneDNN's int8 convolutions use the
AVX-512 VNNI (or AVX2) instructions those CPUs do have and run the same network
about 3 times faster than float32.

The two convolutions of every residual block run in int8: weights per output channel,
activations per tensor with scales from histograms of real noisy crops. The head and
tail convolutions, the pixel (un)shuffle and the final subtraction stay in float32,
so the input and the predicted noise keep their full precision.

The residual additions stay in float32 too. With int8 additions the stream was
requantized after every block with one scale per tensor, which cost 0.20 dB at
sigma 15 on the first 10 CBSD68 photos against float32. The FX graph that
``convert_fx`` makes still rounds each block's output to 8 bits before the float
addition, so the worker does not run it: ``load_quantized`` rebuilds the network
with oneDNN int8 convolutions whose second convolution writes float32 (see
``int8net``).

After calibration, the biases of the int8 convolutions are corrected so that each
block's mean output per channel matches float32 on the calibration crops (see
``int8bias``). That runs the int8 kernels, so this program stops with status 2 on a
CPU whose int8 sums saturate.

The quantized state is written beside the float32 weights as ``<name>-int8.pt`` and
``<name>-int8.json``. The JSON records the SHA-256 of the float32 file it was made
from, and loading rejects a pair that does not match, so new training weights never
run with stale scales. Calibration reads crops of CBSD432 from ``--datasets-dir``
(or PIXTOOLS_DATASETS_DIR) and is deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import operator
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from torch.ao.quantization import QConfigMapping, get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from torch.fx import GraphModule
from torch.nn import functional

from pixtools_worker_ml.data import list_images, load_rgb, resolve_datasets_dir
from pixtools_worker_ml.int8bias import correct_biases
from pixtools_worker_ml.int8net import (
    Int8DenoiseNet,
    kernels_available,
    kernels_exact,
)
from pixtools_worker_ml.model import DenoiseNet

logger = structlog.get_logger(__name__)

ENGINE = "onednn"
# Version 2: residual additions in float32 (version 1 added in int8).
FORMAT_VERSION = 2
CALIBRATION_SIGMAS = (5.0, 15.0, 25.0, 35.0, 50.0, 55.0)
EXAMPLE_SHAPE = (1, 3, 64, 64)


class QuantizedWeightsError(RuntimeError):
    """The int8 file is missing, unreadable or made from other float32 weights."""


def int8_path_for(weights_path: Path) -> Path:
    """Return where the int8 state of ``weights_path`` lives (``<stem>-int8.pt``)."""
    return weights_path.with_name(f"{weights_path.stem}-int8.pt")


def int8_supported() -> bool:
    """Return True when torch can calibrate and run the int8 network here."""
    return ENGINE in torch.backends.quantized.supported_engines and kernels_available()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def qconfig_mapping() -> QConfigMapping:
    """Return the mapping that puts the block convolutions in int8, the rest in fp32."""
    return (
        get_default_qconfig_mapping(ENGINE)
        .set_module_name("head", None)
        .set_module_name("tail", None)
        .set_object_type(functional.pixel_unshuffle, None)
        .set_object_type(functional.pixel_shuffle, None)
        .set_object_type(operator.add, None)
        .set_object_type(torch.add, None)
    )


def _prepare(model: DenoiseNet) -> GraphModule:
    torch.backends.quantized.engine = ENGINE
    # FX graph mode warns on every call that it is deprecated in favour of torchao.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_fx(
            copy.deepcopy(model).eval(),
            qconfig_mapping(),
            (torch.zeros(EXAMPLE_SHAPE),),
        )


def _convert(prepared: GraphModule) -> GraphModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared).eval()


def quantize(model: DenoiseNet, batches: Iterable[torch.Tensor]) -> GraphModule:
    """Calibrate activation ranges on ``batches`` (N, 3, H, W) and convert to int8."""
    prepared = _prepare(model)
    with torch.inference_mode():
        for batch in batches:
            prepared(batch)
    return _convert(prepared)


def calibration_batches(
    folder: Path, count: int, crop: int, seed: int
) -> Iterator[torch.Tensor]:
    """Yield ``count`` noisy crops of the photos in ``folder``, spread over them.

    Each crop gets white Gaussian noise at one of CALIBRATION_SIGMAS in turn, like
    the blind training data, and is passed unclipped, as at evaluation.
    """
    paths = list_images(folder)
    if not paths:
        raise SystemExit(f"no images found in {folder}")
    rng = np.random.default_rng(seed)
    stride = max(1, len(paths) // count)
    for index in range(count):
        pixels = load_rgb(paths[(index * stride) % len(paths)])
        height, width = pixels.shape[:2]
        size = min(crop, height, width) // 2 * 2
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
        clean = pixels[top : top + size, left : left + size].astype(np.float32) / 255
        sigma = CALIBRATION_SIGMAS[index % len(CALIBRATION_SIGMAS)] / 255.0
        noisy = clean + rng.normal(0.0, sigma, clean.shape).astype(np.float32)
        yield torch.from_numpy(noisy).permute(2, 0, 1)[None].contiguous()


def save_quantized(
    quantized: GraphModule, source_weights: Path, metadata: dict[str, Any]
) -> Path:
    """Write ``<name>-int8.pt`` and its JSON beside ``source_weights``, atomically."""
    path = int8_path_for(source_weights)
    temporary = path.with_suffix(".pt.tmp")
    torch.save(quantized.state_dict(), temporary)
    temporary.replace(path)

    description = {
        "format": FORMAT_VERSION,
        "engine": ENGINE,
        "source_weights": source_weights.name,
        "source_sha256": file_sha256(source_weights),
        "calibration": metadata,
    }
    json_path = path.with_suffix(".json")
    json_temporary = json_path.with_suffix(".json.tmp")
    json_temporary.write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
    json_temporary.replace(json_path)
    return path


def load_quantized(model: DenoiseNet, source_weights: Path) -> Int8DenoiseNet:
    """Load the int8 state saved beside ``model``'s weights as the network to run.

    Raises QuantizedWeightsError when the files are missing, were made from a
    different float32 file or do not fit the model, or when this CPU's int8
    convolutions do not sum exactly.
    """
    path = int8_path_for(source_weights)
    json_path = path.with_suffix(".json")
    if not path.is_file() or not json_path.is_file():
        raise QuantizedWeightsError(
            f"int8 weights not found: {path} and {json_path} are both needed; make "
            "them with python -m pixtools_worker_ml.quantize"
        )
    if not int8_supported():
        raise QuantizedWeightsError(
            f"this torch build lacks the {ENGINE} quantized engine or its int8 "
            "convolution operators; set DENOISE_PRECISION to fp32 or bf16"
        )

    description = json.loads(json_path.read_text())
    if description.get("format") != FORMAT_VERSION:
        raise QuantizedWeightsError(
            f"{json_path.name} has int8 format {description.get('format')}, and this "
            f"version reads format {FORMAT_VERSION}; run python -m "
            "pixtools_worker_ml.quantize again"
        )
    expected = description.get("source_sha256")
    actual = file_sha256(source_weights)
    if expected != actual:
        raise QuantizedWeightsError(
            f"{path.name} was made from float32 weights with SHA-256 {expected}, "
            f"but {source_weights.name} has {actual}; run python -m "
            "pixtools_worker_ml.quantize again"
        )

    if not kernels_exact(model.config.width):
        raise QuantizedWeightsError(
            "this CPU's int8 convolutions saturate (oneDNN adds pairs of 8-bit "
            "products in 16 bits on CPUs without VNNI), so int8 output would be "
            "wrong; use precision auto or fp32 (DENOISE_PRECISION in the ML worker)"
        )

    quantized = _convert(_prepare(model))
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        quantized.load_state_dict(state)
        return Int8DenoiseNet.from_graph(model, quantized)
    except (RuntimeError, ValueError) as error:
        message = (
            f"{path.name} does not fit the model: {error}; run python -m "
            "pixtools_worker_ml.quantize again"
        )
        raise QuantizedWeightsError(message) from error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pixtools_worker_ml.train import DEFAULT_WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets-dir", help="folder containing CBSD432")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--crops", type=int, default=64, help="calibration crops")
    parser.add_argument("--crop-size", type=int, default=160, help="pixels")
    parser.add_argument("--seed", type=int, default=20240612)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from pixtools_worker_ml.weights_io import load_weights

    args = parse_args(argv)
    folder = resolve_datasets_dir(args.datasets_dir) / "CBSD432"
    torch.set_num_threads(1)
    model = load_weights(args.weights)
    if not kernels_exact(model.config.width):
        print(
            "error: this CPU's int8 convolutions saturate, and the bias correction "
            "runs them. Run the quantize program on a CPU with AVX-512 VNNI or AMX.",
            file=sys.stderr,
        )
        return 2

    started = time.monotonic()
    logger.info("quantize_started", weights=str(args.weights), crops=args.crops)
    batches = list(calibration_batches(folder, args.crops, args.crop_size, args.seed))
    quantized = quantize(model, batches)
    correct_biases(model, quantized, batches)
    metadata = {
        "dataset": folder.name,
        "crops": args.crops,
        "crop_size": args.crop_size,
        "seed": args.seed,
        "sigmas": list(CALIBRATION_SIGMAS),
        "bias_correction": True,
    }
    path = save_quantized(quantized, args.weights, metadata)
    logger.info(
        "quantize_finished",
        path=str(path),
        seconds=round(time.monotonic() - started, 1),
    )
    return 0


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    sys.exit(main())
