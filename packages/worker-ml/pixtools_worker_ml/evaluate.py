"""Reproduce the PSNR table of the denoiser on a folder of clean images.

    python -m pixtools_worker_ml.evaluate --datasets-dir DIR            # CBSD68
    python -m pixtools_worker_ml.evaluate --images FOLDER --weights FILE

Protocol, as in the published DnCNN/FFDNet colour tables: each clean RGB image is
scaled to [0, 1] floats, white Gaussian noise of sigma/255 is added and the noisy
float image is given to the network unclipped. The output is clipped to [0, 1] and
rounded to 8 bits, and PSNR is computed on the whole RGB image against the 8-bit
original. The noise of image ``i`` at ``sigma`` comes from
``numpy.random.default_rng(noise_seed(i, sigma))`` in file-name order, so every run
uses the same noise. The "noisy" column is the PSNR of the noisy input after the same
clipping and rounding.

``--eight-bit`` clips and rounds the noisy image to 8 bits before the network sees
it, as when a noisy photo is saved to PNG and uploaded through the API. Clipping
biases the noise in highlights and shadows, so these scores are lower than the
published protocol's, most at sigma 50.

``--views 2`` (or 4, 8) averages the network's output over rotated and mirrored
views of each image (see ``pixtools_worker_ml.views``), as the ML worker does when
its CPU is fast enough. The published figures are for one view.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import structlog

from pixtools_worker_ml.data import (
    add_gaussian_noise,
    list_images,
    load_rgb,
    noise_seed,
    psnr_uint8,
    resolve_datasets_dir,
    to_eight_bit,
)
from pixtools_worker_ml.inference import Denoiser, TileOptions
from pixtools_worker_ml.quantize import QuantizedWeightsError

# PSNR (dB) on CBSD68 as restated in the DPIR and SwinIR repositories' tables.
PUBLISHED = {
    "CBM3D": {15: 33.52, 25: 30.71, 50: 27.38},
    "CDnCNN-B": {15: 33.90, 25: 31.24, 50: 27.95},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets-dir", help="folder containing CBSD68")
    parser.add_argument("--images", type=Path, help="folder of clean images")
    parser.add_argument("--weights", type=Path, help="default: bundled weights")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: CPU share)"
    )
    parser.add_argument("--precision", default="auto", help="auto, bf16, fp32 or int8")
    parser.add_argument(
        "--views",
        default="1",
        help="rotated and mirrored views averaged per image: 1 (default), 2, 4, 8, "
        "or auto (the most that fit 0.8 s per megapixel here, as the ML worker)",
    )
    parser.add_argument(
        "--tile-size", type=int, default=0, help="0 = whole image (default)"
    )
    parser.add_argument("--tile-overlap", type=int, default=16)
    parser.add_argument(
        "--eight-bit",
        action="store_true",
        help="clip and round the noisy input to 8 bits, as a saved noisy photo is",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def evaluate(
    denoiser: Denoiser,
    paths: list[Path],
    sigmas: list[float],
    eight_bit: bool = False,
) -> dict[float, dict[str, float]]:
    """Return mean noisy and restored PSNR per sigma over the images."""
    noisy_scores: dict[float, list[float]] = {sigma: [] for sigma in sigmas}
    restored_scores: dict[float, list[float]] = {sigma: [] for sigma in sigmas}
    for index, path in enumerate(paths):
        clean = load_rgb(path).astype(np.float32) / 255.0
        for sigma in sigmas:
            noisy = add_gaussian_noise(clean, sigma, noise_seed(index, sigma))
            if eight_bit:
                noisy = to_eight_bit(noisy)
            restored = denoiser.denoise_array(noisy)
            noisy_scores[sigma].append(psnr_uint8(noisy, clean))
            restored_scores[sigma].append(psnr_uint8(restored, clean))
    return {
        sigma: {
            "noisy": float(np.mean(noisy_scores[sigma])),
            "restored": float(np.mean(restored_scores[sigma])),
        }
        for sigma in sigmas
    }


def markdown_table(results: dict[float, dict[str, float]], label: str) -> str:
    lines = [
        f"| sigma | noisy input | {label} | CBM3D (published) | CDnCNN-B (published) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for sigma, scores in results.items():
        published = [PUBLISHED[name].get(int(sigma)) for name in ("CBM3D", "CDnCNN-B")]
        cells = ["-" if value is None else f"{value:.2f}" for value in published]
        lines.append(
            f"| {sigma:g} | {scores['noisy']:.2f} | {scores['restored']:.2f} | "
            f"{cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.images or resolve_datasets_dir(args.datasets_dir) / "CBSD68"
    paths = list_images(folder)[: args.limit]
    try:
        denoiser = Denoiser.load(
            args.weights,
            tiles=TileOptions(args.tile_size, args.tile_overlap),
            max_pixels=10**9,
            precision=args.precision,
            threads=args.threads,
            views=args.views,
        )
    except QuantizedWeightsError as error:
        print(f"error: precision {args.precision}: {error}", file=sys.stderr)
        return 2

    started = time.monotonic()
    results = evaluate(denoiser, paths, args.sigmas, eight_bit=args.eight_bit)
    seconds = time.monotonic() - started
    views = f", {denoiser.views} views" if denoiser.views > 1 else ""
    eight_bit = ", 8-bit input" if args.eight_bit else ""
    label = f"ours ({denoiser.precision}{views}{eight_bit})"
    print(markdown_table(results, label))
    print(
        f"\n{len(paths)} images from {folder.name}, {seconds:.0f} s, "
        f"{denoiser.threads} thread(s)"
    )
    if args.json:
        record = {
            "images": len(paths),
            "folder": folder.name,
            "precision": denoiser.precision,
            "views": denoiser.views,
            "tile_size": args.tile_size,
            "eight_bit_input": args.eight_bit,
            "results": {f"{k:g}": v for k, v in results.items()},
            "seconds": round(seconds, 1),
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    # Logs go to stderr, so stdout carries only the table and the summary line.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    sys.exit(main())
