"""Peer comparison: thumbor, PixTools' worker path and bare Pillow on one task.

The task is resize to 1920 px wide + WebP (quality 80) of a 12 MP phone-like
JPEG and a 3 MP JPEG. thumbor runs from its own virtual environment (it pins
Pillow below 13) as one process bound to 127.0.0.1, with the file loader over a
temp folder, and is called over HTTP one request at a time. PixTools' worker
path (FilesystemStorage get, convert_image, put) and the bare Pillow loop run in
this process. Rounds alternate between the three so slow periods hit all of
them. Throughput per core is images per CPU second of the process doing the
work: thumbor's server process, or this process for the other two.

    python bench/bench_peer_thumbor.py --thumbor-python /path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchkit  # noqa: F401  (adds the PixTools source roots to sys.path)
import httpx
from benchkit import pillow_baseline
from benchkit.cli import (
    build_parser,
    command_line,
    configure_bench_logging,
    output_dir,
    run_footer,
    run_header,
)
from benchkit.images import PHONE_3MP, PHONE_12MP, BenchImage, photo_jpeg, scaled_size
from benchkit.machine import machine_summary
from benchkit.platform import (
    ChildProcess,
    port_open,
    process_cpu_seconds,
    start_child,
    stop_child,
    wait_until,
)
from benchkit.report import bar_chart, markdown_table, write_json, write_markdown
from benchkit.stats import Samples, percentile, time_call
from benchkit.worker_path import WorkerPath
from PIL import Image

from pixtools_shared.testing import free_port

SCENARIO = "bench_peer_thumbor"
DESCRIPTION = "thumbor vs PixTools' worker path vs bare Pillow: resize + WebP."
WEBP_QUALITY = 80
FULL_WIDTH = 1920
SMOKE_WIDTH = 100
SMOKE_SCALE = 0.06
THUMBOR_PYTHON_ENV = "PIXTOOLS_BENCH_THUMBOR_PYTHON"
SYSTEMS = ("thumbor", "pixtools-worker-path", "bare-pillow")

THUMBOR_CONFIG = """\
SECURITY_KEY = "bench-only-not-secret"
ALLOW_UNSAFE_URL = True
LOADER = "thumbor.loaders.file_loader"
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = "thumbor.storages.no_storage"
RESULT_STORAGE = None
QUALITY = {quality}
AUTO_WEBP = False
PRESERVE_EXIF_INFO = False
"""


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser(SCENARIO, DESCRIPTION)
    parser.add_argument(
        "--thumbor-python",
        type=Path,
        default=os.environ.get(THUMBOR_PYTHON_ENV) or None,
        help="Python of the virtual environment where thumbor is installed "
        f"(default ${THUMBOR_PYTHON_ENV}); without it only PixTools and bare "
        "Pillow are measured",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating rounds (default 6, 1 with --smoke)",
    )
    parser.add_argument(
        "--per-round",
        type=int,
        default=None,
        help="images per system and round (default 5, 2 with --smoke)",
    )
    return parser.parse_args(argv)


def thumbor_command(python: Path, port: int, config: Path) -> list[str]:
    script = python.parent / "thumbor"
    return [
        str(script),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        str(config),
        "-l",
        "warning",
    ]


def start_thumbor(python: Path, root: Path, log_dir: Path) -> tuple[ChildProcess, str]:
    config = root.parent / "thumbor.conf"
    config.write_text(THUMBOR_CONFIG.format(root=str(root), quality=WEBP_QUALITY))
    port = free_port()
    child = start_child("thumbor", thumbor_command(python, port, config), {}, log_dir)
    wait_until("thumbor port", lambda: port_open(port), [child], 60)
    return child, f"http://127.0.0.1:{port}"


class Measurement:
    """Per-image wall samples and CPU seconds of one system on one image."""

    def __init__(self) -> None:
        self.samples = Samples()
        self.cpu_seconds = 0.0
        self.images = 0
        self.output_bytes = 0
        self.output_size: tuple[int, int] | None = None

    def summary(self) -> dict[str, Any]:
        cpu_ms = self.cpu_seconds * 1000 / self.images if self.images else None
        return {
            "images": self.images,
            "wall_p50_ms": round(percentile(self.samples.wall_ms, 50), 1),
            "wall_p90_ms": round(percentile(self.samples.wall_ms, 90), 1),
            "cpu_ms_per_image": round(cpu_ms, 1) if cpu_ms else None,
            "images_per_cpu_second": round(1000 / cpu_ms, 2) if cpu_ms else None,
            "output_bytes": self.output_bytes,
            "output_size": list(self.output_size) if self.output_size else None,
        }


def thumbor_block(
    client: httpx.Client,
    thumbor: ChildProcess,
    filename: str,
    width: int,
    count: int,
    measurement: Measurement,
) -> None:
    url = f"/unsafe/{width}x0/filters:format(webp):quality({WEBP_QUALITY})/{filename}"
    cpu_before = process_cpu_seconds(thumbor.process.pid) or 0.0
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(url)
        measurement.samples.add(time.perf_counter() - start, 0.0)
        response.raise_for_status()
        measurement.output_bytes = len(response.content)
        decoded = Image.open(io.BytesIO(response.content))
        measurement.output_size = decoded.size
    measurement.cpu_seconds += (
        process_cpu_seconds(thumbor.process.pid) or 0.0
    ) - cpu_before
    measurement.images += count


def local_block(run: Any, count: int, measurement: Measurement) -> None:
    cpu_before = time.process_time()
    for _ in range(count):
        result = time_call(run, measurement.samples)
    measurement.cpu_seconds += time.process_time() - cpu_before
    measurement.images += count
    measurement.output_bytes, measurement.output_size = result


def measure_image(
    image: BenchImage,
    width: int,
    rounds: int,
    per_round: int,
    worker: WorkerPath,
    thumbor: tuple[ChildProcess, str] | None,
    filename: str,
) -> dict[str, Any]:
    job_id = str(uuid.uuid4())
    worker.store_source(job_id, image.data, "image/jpeg")

    def worker_run() -> tuple[int, tuple[int, int]]:
        stages = worker.run(job_id, "webp", {"width": width, "quality": WEBP_QUALITY})
        return stages.output_bytes, (stages.width or 0, stages.height or 0)

    def bare_run() -> tuple[int, tuple[int, int]]:
        data, out_w, out_h = pillow_baseline.convert(image.data, "webp", width)
        return len(data), (out_w, out_h)

    measurements = {name: Measurement() for name in SYSTEMS}
    worker_run()
    bare_run()
    with httpx.Client(
        base_url=thumbor[1] if thumbor else "http://127.0.0.1", timeout=120
    ) as client:
        if thumbor:
            thumbor_block(client, thumbor[0], filename, width, 1, Measurement())
        for _ in range(rounds):
            if thumbor:
                thumbor_block(
                    client,
                    thumbor[0],
                    filename,
                    width,
                    per_round,
                    measurements["thumbor"],
                )
            local_block(worker_run, per_round, measurements["pixtools-worker-path"])
            local_block(bare_run, per_round, measurements["bare-pillow"])

    return {
        "image": image.name,
        "width": width,
        "systems": {
            name: measurement.summary()
            for name, measurement in measurements.items()
            if measurement.images
        },
    }


def results_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "image",
        "system",
        "images",
        "wall p50 ms",
        "CPU ms per image",
        "images per CPU second",
        "output bytes",
        "output size",
    ]
    table = []
    for row in rows:
        for system, stats in row["systems"].items():
            size = stats["output_size"]
            table.append(
                [
                    row["image"],
                    system,
                    stats["images"],
                    stats["wall_p50_ms"],
                    stats["cpu_ms_per_image"],
                    stats["images_per_cpu_second"],
                    stats["output_bytes"],
                    f"{size[0]}x{size[1]}" if size else "-",
                ]
            )
    return markdown_table(headers, table)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse_arguments(argv)
    configure_bench_logging()
    folder = output_dir(arguments, SCENARIO)
    smoke = arguments.smoke
    width = SMOKE_WIDTH if smoke else FULL_WIDTH
    rounds = arguments.rounds or (1 if smoke else 6)
    per_round = arguments.per_round or (2 if smoke else 5)
    scale = SMOKE_SCALE if smoke else 1.0

    results: dict[str, Any] = run_header(SCENARIO, arguments)
    results["command"] = command_line(SCENARIO, argv)
    images = [
        photo_jpeg("phone-12mp-jpeg", scaled_size(PHONE_12MP, scale), seed=0),
        photo_jpeg("jpeg-3mp", scaled_size(PHONE_3MP, scale), seed=3),
    ]
    results["images"] = [image.describe() for image in images]
    results["thumbor"] = {"python": str(arguments.thumbor_python), "skipped": None}

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-thumbor-") as temp:
        root = Path(temp) / "images"
        root.mkdir()
        for image in images:
            (root / f"{image.name}.jpg").write_bytes(image.data)

        thumbor = None
        python = arguments.thumbor_python
        if python is None:
            results["thumbor"]["skipped"] = "no --thumbor-python given"
        elif not (python.parent / "thumbor").exists():
            results["thumbor"]["skipped"] = f"no thumbor script next to {python}"
        else:
            thumbor = start_thumbor(python, root, folder)
            results["thumbor"]["version"] = thumbor_version(python)
        try:
            worker = WorkerPath(Path(temp) / "storage")
            for image in images:
                row = measure_image(
                    image,
                    width,
                    rounds,
                    per_round,
                    worker,
                    thumbor,
                    f"{image.name}.jpg",
                )
                rows.append(row)
                print(row, flush=True)
        finally:
            if thumbor:
                stop_child(thumbor[0], grace=10)

    results["rows"] = rows
    plot_path = folder / "throughput_per_core.png"
    bar_chart(
        plot_path,
        [row["image"] for row in rows],
        {
            system: [
                row["systems"].get(system, {}).get("images_per_cpu_second")
                for row in rows
            ]
            for system in SYSTEMS
        },
        ylabel="images per CPU second",
        title=f"Resize to {width} px + WebP q{WEBP_QUALITY}: throughput per core",
    )
    results["plots"] = [plot_path.name]
    results.update(run_footer())
    write_json(folder / "results.json", results)
    skipped = results["thumbor"]["skipped"]
    write_markdown(
        folder / "results.md",
        "Peer comparison: thumbor",
        [
            machine_summary(results),
            f"Command: `{results['command']}`. thumbor "
            f"{results['thumbor'].get('version', '-')} (one process, HTTP, file "
            "loader); PixTools worker path and bare Pillow in-process. "
            f"{rounds} rounds x {per_round} images per system.",
            results_table(rows),
            f"thumbor not measured: {skipped}" if skipped else "",
        ],
    )
    print(f"results in {folder}", flush=True)
    return results


def thumbor_version(python: Path) -> str | None:
    completed = subprocess.run(  # noqa: S603  (fixed argv)
        [str(python), "-c", "import thumbor; print(thumbor.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return completed.stdout.strip() or None


if __name__ == "__main__":
    main()
    sys.exit(0)
