"""Compare the ways the denoiser can spread its threads over an image's tiles.

    python bench/bench_tile_threads.py [--megapixels 2] [--rounds 4] [--threads N]
        [--precision auto] [--busy-cores K] [--output-dir DIR]

The bundled network is loaded once, and one synthetic noisy photo (the one
bench_denoise.py builds) is denoised three ways in every round, so that a slow spell
of the machine falls on all three alike:

- ``tiles``: each of the N threads denoises whole tiles on one torch thread, as the
  ML worker does by default (DENOISE_PARALLEL_TILES).
- ``shared``: one tile at a time, with N torch threads splitting each operation.
- ``one_thread``: one tile at a time on one torch thread.

With ``--busy-cores K``, K child processes spin on the CPU for the whole
measurement, as another worker or a noisy neighbour would. Every way runs one
view per tile. Results go to tile_threads.json and tile_threads.md in
--output-dir: seconds per megapixel per round, their median and their minimum.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import benchkit  # noqa: F401  (adds the PixTools source roots to sys.path)
from bench_denoise import build_noisy_photo
from benchkit.machine import describe_machine, machine_line
from benchkit.report import (
    default_output_dir,
    markdown_table,
    write_json,
    write_markdown,
)

WAYS = ("tiles", "shared", "one_thread")
SMOKE_MEGAPIXELS = 0.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megapixels", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--threads",
        type=int,
        help="threads of the tiles and shared ways (default: CPU share)",
    )
    parser.add_argument("--precision", default="auto", help="auto, bf16, fp32 or int8")
    parser.add_argument(
        "--busy-cores",
        type=int,
        default=0,
        help="child processes that spin on the CPU during the measurement",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a 0.3 MP photo and one round"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=default_output_dir("tile_threads")
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.megapixels <= 0 or args.busy_cores < 0:
        parser.error("--rounds and --megapixels must be positive, --busy-cores >= 0")
    if args.smoke:
        args.megapixels, args.rounds = SMOKE_MEGAPIXELS, 1
    return args


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """Keep ``count`` child processes spinning on the CPU inside the block."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from pixtools_worker_ml.inference import Denoiser
    from pixtools_worker_ml.tiling import torch_threads

    loaded = Denoiser.load(
        max_pixels=10**9, precision=args.precision, threads=args.threads, views=1
    )
    threads = loaded.threads
    quantized = loaded.network if loaded.precision == "int8" else None

    def variant(count: int, parallel: bool) -> Denoiser:
        return Denoiser(
            loaded.model,
            max_pixels=10**9,
            precision=loaded.precision,
            threads=count,
            quantized=quantized,
            views=1,
            parallel_tiles=parallel,
        )

    ways = {
        "tiles": (threads, variant(threads, True)),
        "shared": (threads, variant(threads, False)),
        "one_thread": (1, variant(1, False)),
    }
    pixels = build_noisy_photo(args.megapixels)
    image = Image.fromarray(pixels, "RGB")
    megapixels = pixels.shape[0] * pixels.shape[1] / 1e6
    warm = Image.fromarray(build_noisy_photo(0.05), "RGB")

    timings: dict[str, list[float]] = {name: [] for name in WAYS}
    outputs: dict[str, Any] = {}
    with busy_cores(args.busy_cores):
        for count, denoiser in ways.values():
            with torch_threads(count):
                denoiser.denoise_image(warm)
        for round_index in range(args.rounds):
            for name in WAYS:
                count, denoiser = ways[name]
                with torch_threads(count):
                    started = time.perf_counter()
                    result = denoiser.denoise_image(image)
                    seconds = time.perf_counter() - started
                outputs[name] = np.asarray(result, dtype=np.int16)
                timings[name].append(round(seconds / megapixels, 3))
            print(
                f"round {round_index + 1}: "
                + ", ".join(f"{name} {timings[name][-1]} s/MP" for name in WAYS),
                flush=True,
            )

    return {
        "megapixels": round(megapixels, 2),
        "width": pixels.shape[1],
        "height": pixels.shape[0],
        "threads": threads,
        "precision": loaded.precision,
        "int8_weight_range": getattr(quantized, "weight_range", None),
        "busy_cores": args.busy_cores,
        "rounds": args.rounds,
        "seconds_per_megapixel": timings,
        "median_seconds_per_megapixel": {
            name: round(statistics.median(values), 3)
            for name, values in timings.items()
        },
        "fastest_seconds_per_megapixel": {
            name: min(values) for name, values in timings.items()
        },
        # Largest difference from the shared way's output, in 8-bit levels.
        "max_difference_levels": {
            name: int(np.abs(outputs[name] - outputs["shared"]).max()) for name in WAYS
        },
    }


def counted(count: int, noun: str, plural_ending: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}{plural_ending}"


def report(results: dict[str, Any], machine: dict[str, Any]) -> str:
    rows = [
        [
            name,
            1 if name == "one_thread" else results["threads"],
            results["median_seconds_per_megapixel"][name],
            results["fastest_seconds_per_megapixel"][name],
            " / ".join(str(value) for value in results["seconds_per_megapixel"][name]),
        ]
        for name in WAYS
    ]
    table = markdown_table(
        ["way", "threads", "median s/MP", "fastest s/MP", "every round (s/MP)"], rows
    )
    largest = max(results["max_difference_levels"].values())
    spinners = counted(results["busy_cores"], "busy child process", "es")
    rounds = counted(results["rounds"], "round", "s")
    agreement = (
        "The outputs of the three ways are identical."
        if largest == 0
        else f"The outputs of the three ways differ by up to {largest} levels."
    )
    return (
        f"Machine: {machine_line(machine)}. Photo: {results['megapixels']} MP "
        f"({results['width']}x{results['height']}), precision {results['precision']}, "
        f"one view, {spinners}, {rounds}. {agreement}\n\n{table}\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = describe_machine()
    results = measure(args)
    results["machine"] = machine
    write_json(args.output_dir / "tile_threads.json", results)
    write_markdown(
        args.output_dir / "tile_threads.md",
        "Denoise threads over tiles",
        [report(results, machine)],
    )
    print(report(results, machine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
