"""Post-training int8 quantization of the denoiser, for CPUs without fast bfloat16.

    python -m pixtools_worker_ml.quantize --datasets-dir DIR [--weights FILE]
        [--weight-range auto|full|pairs]

On CPUs without AMX or AVX-512 BF16, bfloat16 runs slower than float32, and float32
costs about 3 s per megapixel on one core. oneDNN's int8 convolutions use the
AVX-512 VNNI (or AVX2) instructions those CPUs do have and run the same network
about 3 times faster than float32 with VNNI, and 1.6 times faster with AVX2 only.

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

There are two int8 files per float32 file. The full range one (``<name>-int8.pt``)
uses every int8 weight code and needs a CPU whose int8 sums are exact (VNNI or
AMX). The pair-limited one (``<name>-int8-pairs.pt``) keeps each pair of weight
codes that AVX2 kernels add in 16 bits within 128 in magnitude (see ``int8pairs``),
so it also runs exactly on CPUs with AVX2 only. The worker loads the full range
file where the CPU sums it exactly and the pair-limited one elsewhere.

After calibration, the biases of the int8 convolutions are corrected so that each
block's mean output per channel matches float32 on the calibration crops (see
``int8bias``). That runs the int8 kernels, so by default (``--weight-range auto``)
this program writes each file whose kernels are exact on this CPU: both with VNNI or
AMX, the pair-limited one with AVX2 only. It stops with status 2 when it can write
neither, or when the range requested is not exact here.

Each file has a JSON beside it (``<name>-int8.json``, ``<name>-int8-pairs.json``)
that records the SHA-256 of the float32 file it was made from. Loading rejects a
file whose JSON does not match, so new training weights never run with stale
scales. Calibration reads crops of CBSD432 from ``--datasets-dir``
(or PIXTOOLS_DATASETS_DIR) and is deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import operator
import pickle
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from torch.ao.quantization import QConfig, QConfigMapping, get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from torch.fx import GraphModule
from torch.nn import functional

from pixtools_worker_ml.data import list_images, load_rgb, resolve_datasets_dir
from pixtools_worker_ml.int8bias import correct_biases
from pixtools_worker_ml.int8net import Int8DenoiseNet, kernels_available
from pixtools_worker_ml.int8pairs import (
    WEIGHT_RANGES,
    PairLimitedObserver,
    WeightRange,
    exact_weight_range,
    pairs_fit,
)
from pixtools_worker_ml.model import DenoiseNet

logger = structlog.get_logger(__name__)

ENGINE = "onednn"
# Version 2: residual additions in float32 (version 1 added in int8).
FORMAT_VERSION = 2
CALIBRATION_SIGMAS = (5.0, 15.0, 25.0, 35.0, 50.0, 55.0)
EXAMPLE_SHAPE = (1, 3, 64, 64)


# What every rejected int8 file's message tells the operator to do.
RERUN = "run python -m pixtools_worker_ml.quantize again"


class QuantizedWeightsError(RuntimeError):
    """The int8 file is missing, unreadable or made from other float32 weights."""


def int8_path_for(weights_path: Path, weight_range: WeightRange = "full") -> Path:
    """Return where an int8 state of ``weights_path`` lives.

    That is ``<stem>-int8.pt`` for full range weights and ``<stem>-int8-pairs.pt``
    for pair-limited ones.
    """
    suffix = "" if weight_range == "full" else f"-{weight_range}"
    return weights_path.with_name(f"{weights_path.stem}-int8{suffix}.pt")


def int8_supported() -> bool:
    """Return True when torch can calibrate and run the int8 network here."""
    return ENGINE in torch.backends.quantized.supported_engines and kernels_available()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def qconfig_mapping(weight_range: WeightRange = "full") -> QConfigMapping:
    """Return the mapping that puts the block convolutions in int8, the rest in fp32.

    Activations get oneDNN's default observer. Weights get its default per-channel
    observer for the full range, or ``PairLimitedObserver`` for pair-limited codes.
    """
    mapping = get_default_qconfig_mapping(ENGINE)
    if weight_range == "pairs":
        default = mapping.global_qconfig
        assert default is not None
        mapping.set_global(
            QConfig(activation=default.activation, weight=PairLimitedObserver)
        )
    return (
        mapping.set_module_name("head", None)
        .set_module_name("tail", None)
        .set_object_type(functional.pixel_unshuffle, None)
        .set_object_type(functional.pixel_shuffle, None)
        .set_object_type(operator.add, None)
        .set_object_type(torch.add, None)
    )


def _prepare(model: DenoiseNet, weight_range: WeightRange = "full") -> GraphModule:
    torch.backends.quantized.engine = ENGINE
    # FX graph mode warns on every call that it is deprecated in favour of torchao.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_fx(
            copy.deepcopy(model).eval(),
            qconfig_mapping(weight_range),
            (torch.zeros(EXAMPLE_SHAPE),),
        )


def _convert(prepared: GraphModule) -> GraphModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared).eval()


def quantize(
    model: DenoiseNet,
    batches: Iterable[torch.Tensor],
    weight_range: WeightRange = "full",
) -> GraphModule:
    """Calibrate activation ranges on ``batches`` (N, 3, H, W) and convert to int8."""
    prepared = _prepare(model, weight_range)
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
    quantized: GraphModule,
    source_weights: Path,
    metadata: dict[str, Any],
    weight_range: WeightRange = "full",
) -> Path:
    """Write the int8 file of ``weight_range`` and its JSON beside ``source_weights``.

    Both are written atomically.
    """
    path = int8_path_for(source_weights, weight_range)
    temporary = path.with_suffix(".pt.tmp")
    torch.save(quantized.state_dict(), temporary)
    temporary.replace(path)

    description = {
        "format": FORMAT_VERSION,
        "engine": ENGINE,
        "weight_range": weight_range,
        "sha256": file_sha256(path),
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

    Where this CPU sums full range codes exactly, the full range file is tried
    first and the pair-limited one second, with a warning. So a missing or stale
    full range file does not cost int8 when a valid pair-limited one is there.
    Where only pair-limited sums are exact, only the pair-limited file is tried.
    Raises QuantizedWeightsError when neither sum is exact here, or with the first
    file's error when no file loads.
    """
    if not int8_supported():
        raise QuantizedWeightsError(
            f"this torch build lacks the {ENGINE} quantized engine or its int8 "
            "convolution operators; set DENOISE_PRECISION to fp32 or bf16"
        )
    exact = exact_weight_range(model.config.width)
    if exact is None:
        raise QuantizedWeightsError(
            "this CPU's int8 convolutions saturate (oneDNN adds pairs of 8-bit "
            "products in 16 bits without VNNI, and even pair-limited weights were "
            "not summed exactly), so int8 output would be wrong; use precision auto "
            "or fp32 (DENOISE_PRECISION in the ML worker)"
        )

    first_error: QuantizedWeightsError | None = None
    for weight_range in runnable_ranges(exact):
        try:
            network = load_int8_file(model, source_weights, weight_range)
        except QuantizedWeightsError as error:
            first_error = first_error or error
            continue
        if first_error is not None:
            logger.warning(
                "int8_full_range_unavailable",
                loaded=str(int8_path_for(source_weights, weight_range)),
                error=str(first_error),
            )
        return network
    assert first_error is not None
    raise first_error


def read_description(json_path: Path) -> dict[str, Any]:
    """Return the JSON object beside an int8 file, or raise QuantizedWeightsError."""
    try:
        description = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise QuantizedWeightsError(
            f"{json_path.name} is unreadable ({error}); {RERUN}"
        ) from error
    if not isinstance(description, dict):
        raise QuantizedWeightsError(
            f"{json_path.name} contains a JSON {type(description).__name__}, not an "
            f"object; {RERUN}"
        )
    return description


def check_description(
    description: dict[str, Any],
    path: Path,
    source_weights: Path,
    weight_range: WeightRange,
) -> None:
    """Raise QuantizedWeightsError when the JSON does not match the files it names."""
    json_name = path.with_suffix(".json").name
    found_format = description.get("format")
    if found_format != FORMAT_VERSION:
        raise QuantizedWeightsError(
            f"{json_name} has int8 format {found_format!r}, and this version reads "
            f"format {FORMAT_VERSION}; {RERUN}"
        )
    # Files written before the pair-limited range existed record neither field.
    recorded_range = description.get("weight_range", "full")
    if recorded_range != weight_range:
        raise QuantizedWeightsError(
            f"{json_name} records weight range {recorded_range!r}, but {path.name} "
            f"must hold {weight_range!r} weights; {RERUN}"
        )
    engine = description.get("engine")
    if engine != ENGINE:
        raise QuantizedWeightsError(
            f"{json_name} records engine {engine!r}, and this version runs "
            f"{ENGINE!r}; {RERUN}"
        )

    expected = description.get("source_sha256")
    if not isinstance(expected, str):
        raise QuantizedWeightsError(f"{json_name} records no source SHA-256; {RERUN}")
    actual = file_sha256(source_weights)
    if expected != actual:
        raise QuantizedWeightsError(
            f"{path.name} was made from float32 weights with SHA-256 {expected}, "
            f"but {source_weights.name} has {actual}; {RERUN}"
        )
    recorded = description.get("sha256")
    if recorded is not None and recorded != file_sha256(path):
        raise QuantizedWeightsError(
            f"{path.name} has changed since it was written (its SHA-256 differs "
            f"from the one in {json_name}); {RERUN}"
        )


def load_int8_file(
    model: DenoiseNet, source_weights: Path, weight_range: WeightRange
) -> Int8DenoiseNet:
    """Load and check the int8 file of one weight range beside ``source_weights``."""
    path = int8_path_for(source_weights, weight_range)
    json_path = path.with_suffix(".json")
    if not path.is_file() or not json_path.is_file():
        raise QuantizedWeightsError(
            f"int8 weights not found: {path} and {json_path} are both needed for "
            f"the {weight_range} weight range; make them with python -m "
            "pixtools_worker_ml.quantize"
        )
    check_description(read_description(json_path), path, source_weights, weight_range)

    quantized = _convert(_prepare(model, weight_range))
    # A damaged file can fail in the unpickler, in torch or in the state dict.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        quantized.load_state_dict(state)
        network = Int8DenoiseNet.from_graph(model, quantized)
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        RuntimeError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
    ) as error:
        message = (
            f"{path.name} is unreadable or does not fit the model: {error}; {RERUN}"
        )
        raise QuantizedWeightsError(message) from error

    if not network.scales_valid():
        raise QuantizedWeightsError(
            f"{path.name} has a scale that is zero, negative or not finite; {RERUN}"
        )
    # A full range file renamed or a stale one would saturate on this CPU.
    if weight_range == "pairs" and not all(
        pairs_fit(conv.weights.int_repr()) for conv in network.convolutions()
    ):
        raise QuantizedWeightsError(
            f"{path.name} has weight code pairs above the pair limit, so this CPU "
            f"would saturate them; {RERUN}"
        )
    network.weight_range = weight_range
    return network


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pixtools_worker_ml.train import DEFAULT_WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets-dir", help="folder containing CBSD432")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--crops", type=int, default=64, help="calibration crops")
    parser.add_argument("--crop-size", type=int, default=160, help="pixels")
    parser.add_argument("--seed", type=int, default=20240612)
    parser.add_argument(
        "--weight-range",
        choices=("auto", *WEIGHT_RANGES),
        default="auto",
        help="int8 file to write: full, pairs, or auto for every one whose int8 "
        "sums are exact on this CPU",
    )
    return parser.parse_args(argv)


def runnable_ranges(exact: WeightRange | None) -> list[WeightRange]:
    """Return the weight ranges a CPU runs exactly, given ``exact_weight_range``.

    A CPU that sums full range codes exactly sums pair-limited codes exactly too.
    """
    if exact is None:
        return []
    return ["full", "pairs"] if exact == "full" else ["pairs"]


def ranges_to_write(requested: str, width: int) -> list[WeightRange]:
    """Return the weight ranges to calibrate, or an empty list when none is exact."""
    runnable = runnable_ranges(exact_weight_range(width))
    if requested == "auto":
        return runnable
    return [weight_range for weight_range in runnable if weight_range == requested]


def main(argv: list[str] | None = None) -> int:
    from pixtools_worker_ml.weights_io import load_weights

    args = parse_args(argv)
    folder = resolve_datasets_dir(args.datasets_dir) / "CBSD432"
    torch.set_num_threads(1)
    model = load_weights(args.weights)
    weight_ranges = ranges_to_write(args.weight_range, model.config.width)
    if not weight_ranges:
        print(
            f"error: this CPU's int8 convolutions saturate for the {args.weight_range} "
            "weight range, and the bias correction runs them. Full range weights "
            "need a CPU with AVX-512 VNNI, AVX-VNNI or AMX; pair-limited weights "
            "also run on AVX2.",
            file=sys.stderr,
        )
        return 2
    if args.weight_range == "auto" and "full" not in weight_ranges:
        logger.warning(
            "full_range_skipped",
            reason="int8 sums of full range weights saturate on this CPU",
            path=str(int8_path_for(args.weights)),
        )

    batches = list(calibration_batches(folder, args.crops, args.crop_size, args.seed))
    for weight_range in weight_ranges:
        started = time.monotonic()
        logger.info(
            "quantize_started",
            weights=str(args.weights),
            crops=args.crops,
            weight_range=weight_range,
        )
        quantized = quantize(model, batches, weight_range)
        correct_biases(model, quantized, batches)
        metadata = {
            "dataset": folder.name,
            "crops": args.crops,
            "crop_size": args.crop_size,
            "seed": args.seed,
            "sigmas": list(CALIBRATION_SIGMAS),
            "bias_correction": True,
        }
        path = save_quantized(quantized, args.weights, metadata, weight_range)
        logger.info(
            "quantize_finished",
            path=str(path),
            weight_range=weight_range,
            seconds=round(time.monotonic() - started, 1),
        )
    return 0


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    sys.exit(main())
