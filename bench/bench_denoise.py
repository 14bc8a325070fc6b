"""Measure denoise speed (seconds per megapixel) and peak memory (RSS).

    python bench/bench_denoise.py [--sizes 1 12 24] [--threads N] [--views V]
        [--output-dir DIR]

Each size runs in its own child process, so the peak RSS of one size is not mixed
with the others. The child builds a synthetic noisy uint8 photo (a tiled pattern of
gradients and shapes with sigma-25 noise), wraps it in a Pillow image and times
``Denoiser.denoise_image`` with the tile settings given, which is the worker's code
path. With --views auto (the default, as in the ML worker) each child measures one
pass at start-up and picks its views, so a busy machine may pick fewer. The peak
RSS includes the input and output images (3 bytes per pixel each, plus their Pillow
copies) and the torch runtime. With --check-whole the 1 MP child also
runs a whole-image pass with the same network and precision and reports the PSNR of
the noisy, tiled and whole outputs against the clean photo, their difference, and
the largest per-pixel difference in 8-bit levels.
Results go to denoise.json and denoise.md in --output-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchkit  # noqa: F401  (adds the PixTools source roots to sys.path)
from benchkit.platform import child_environment

from pixtools_shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SMOKE_SIZES = [0.05, 0.1]
# The ML worker's default tile and views settings.
DEFAULT_TILE_SIZE: int = Settings.model_fields["DENOISE_TILE_SIZE"].default
DEFAULT_TILE_OVERLAP: int = Settings.model_fields["DENOISE_TILE_OVERLAP"].default
DEFAULT_TARGET_SECONDS_PER_MEGAPIXEL: float = Settings.model_fields[
    "DENOISE_TARGET_SECONDS_PER_MEGAPIXEL"
].default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 12, 24])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny images (0.05 and 0.1 MP) that finish in seconds",
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: CPU share)"
    )
    parser.add_argument("--precision", default="auto", help="auto, bf16, fp32 or int8")
    parser.add_argument(
        "--views",
        default="auto",
        help="views per tile: auto (as the ML worker: the most that fit "
        "--target-seconds-per-megapixel), 1, 2, 4 or 8",
    )
    parser.add_argument(
        "--target-seconds-per-megapixel",
        type=float,
        default=DEFAULT_TARGET_SECONDS_PER_MEGAPIXEL,
    )
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE)
    parser.add_argument("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP)
    parser.add_argument("--check-whole", action="store_true")
    parser.add_argument(
        "--output-dir", type=Path, default=REPO_ROOT / "bench" / "results"
    )
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_noisy_photo(megapixels: float, noisy: bool = True) -> Any:
    """Return the uint8 test photo of about ``megapixels`` (4:3), noisy or clean."""
    import numpy as np

    from pixtools_worker_ml.testimages import synthetic_photo, to_uint8

    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(megapixels * 1e6 / width)
    pattern = synthetic_photo(480, 640)
    if noisy:
        rng = np.random.default_rng(0)
        pattern = pattern + rng.normal(0.0, 25 / 255, pattern.shape).astype(np.float32)
    tile = to_uint8(pattern)
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    return np.tile(tile, reps)[:height, :width].copy()


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from pixtools_worker_ml.data import psnr_uint8
    from pixtools_worker_ml.inference import Denoiser, TileOptions

    megapixels = float(args.child)
    denoiser = Denoiser.load(
        tiles=TileOptions(args.tile_size, args.tile_overlap),
        max_pixels=10**9,
        precision=args.precision,
        threads=args.threads,
        views=args.views,
        target_seconds_per_megapixel=args.target_seconds_per_megapixel,
    )
    warm = Image.fromarray(build_noisy_photo(0.05), "RGB")
    denoiser.denoise_image(warm)

    pixels = build_noisy_photo(megapixels)
    image = Image.fromarray(pixels, "RGB")
    height, width = pixels.shape[:2]
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    result = denoiser.denoise_image(image)
    seconds = time.perf_counter() - started
    record: dict[str, Any] = {
        "megapixels": round(width * height / 1e6, 2),
        "width": width,
        "height": height,
        "seconds": round(seconds, 2),
        "seconds_per_megapixel": round(seconds / (width * height / 1e6), 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_rss_before_denoise_mib": round(rss_before, 1),
        "threads": denoiser.threads,
        "precision": denoiser.precision,
        "views": denoiser.views,
    }

    if args.check_whole:
        # The same network, precision and views as the tiled pass, in one piece.
        whole = Denoiser(
            denoiser.model,
            tiles=TileOptions(0, 0),
            max_pixels=10**9,
            precision=denoiser.precision,
            threads=denoiser.threads,
            quantized=denoiser.network if denoiser.precision == "int8" else None,
            views=denoiser.views,
        )
        whole_result = whole.denoise_image(image)
        clean = build_noisy_photo(megapixels, noisy=False).astype(np.float32) / 255.0
        tiled = np.asarray(result, dtype=np.float32) / 255.0
        whole_pixels = np.asarray(whole_result, dtype=np.float32) / 255.0
        tiled_psnr = psnr_uint8(tiled, clean)
        whole_psnr = psnr_uint8(whole_pixels, clean)
        record["noisy_psnr_db"] = round(psnr_uint8(pixels / 255.0, clean), 3)
        record["tiled_psnr_db"] = round(tiled_psnr, 3)
        record["whole_psnr_db"] = round(whole_psnr, 3)
        record["tiled_vs_whole_psnr_difference_db"] = round(
            abs(tiled_psnr - whole_psnr), 5
        )
        record["tiled_vs_whole_max_difference_levels"] = int(
            np.abs(
                np.asarray(result, dtype=int) - np.asarray(whole_result, dtype=int)
            ).max()
        )
    return record


def markdown(records: list[dict[str, Any]], machine: str, tiles: str) -> str:
    lines = [
        f"Machine: {machine}. Tiles: {tiles}.",
        "",
        "| image | seconds | ms/MP | peak RSS (MiB) | threads | precision | views |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for record in records:
        lines.append(
            f"| {record['megapixels']} MP ({record['width']}x{record['height']}) | "
            f"{record['seconds']} | {record['seconds_per_megapixel'] * 1000:.0f} | "
            f"{record['peak_rss_mib']} | {record['threads']} | {record['precision']} | "
            f"{record['views']} |"
        )
    for record in records:
        if "tiled_psnr_db" in record:
            lines.append(
                f"\nAt {record['megapixels']} MP, PSNR against the clean photo: noisy "
                f"{record['noisy_psnr_db']} dB, tiled {record['tiled_psnr_db']} dB, "
                f"whole image {record['whole_psnr_db']} dB (difference "
                f"{record['tiled_vs_whole_psnr_difference_db']} dB, largest pixel "
                f"difference {record['tiled_vs_whole_max_difference_levels']} levels)."
            )
    return "\n".join(lines) + "\n"


def describe_machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, load {os.getloadavg()[0]:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(args)))
        return 0

    environment = child_environment({})
    machine = describe_machine()
    records = []
    sizes = SMOKE_SIZES if args.smoke else args.sizes
    for size in sizes:
        command = [sys.executable, __file__, "--child", str(size)]
        command += ["--precision", args.precision]
        command += ["--views", args.views]
        command += [
            "--target-seconds-per-megapixel",
            str(args.target_seconds_per_megapixel),
        ]
        command += ["--tile-size", str(args.tile_size)]
        command += ["--tile-overlap", str(args.tile_overlap)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if (args.check_whole or args.smoke) and size <= 1:
            command.append("--check-whole")
        # The command is this script and its own options, never outside input.
        completed = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, env=environment, check=True
        )
        record = json.loads(completed.stdout.strip().splitlines()[-1])
        records.append(record)
        print(json.dumps(record), flush=True)

    tiles = f"{args.tile_size} px with {args.tile_overlap} px overlap"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "machine": machine,
        "smoke": args.smoke,
        "tiles": tiles,
        "results": records,
    }
    (args.output_dir / "denoise.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.output_dir / "denoise.md").write_text(markdown(records, machine, tiles))
    print(markdown(records, machine, tiles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
