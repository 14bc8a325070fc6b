"""Operation overhead: the worker's processing time against a bare Pillow loop.

The test images are a 12 MP phone-like JPEG with EXIF and GPS, a 3 MP JPEG and a
3 MP PNG with transparency. For each image and each operation (jpg, png, webp,
avif, metadata), the script times what a standard worker task does
(FilesystemStorage get, convert_image or extract_metadata, FilesystemStorage put).
It also times a bare Pillow pipeline doing the same decode, resize and encode.
Runs of the two alternate, so slow periods on a shared machine hit both. The
ratio of the medians is the overhead of PixTools' checks and storage.

It also compares AVIF encoding by Pillow's own AVIF support with the
pillow-avif-plugin package, when a Python with that plugin is given.

    python bench/bench_operations.py [--smoke] [--avif-plugin-python PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchkit  # noqa: F401  (adds the PixTools source roots to sys.path)
from benchkit import avif_compare, pillow_baseline
from benchkit.cli import (
    build_parser,
    command_line,
    configure_bench_logging,
    output_dir,
    run_footer,
    run_header,
)
from benchkit.images import (
    ALPHA_PNG_SIZE,
    PHONE_3MP,
    PHONE_12MP,
    BenchImage,
    alpha_png,
    photo_jpeg,
    scaled_size,
)
from benchkit.machine import machine_summary
from benchkit.report import bar_chart, markdown_table, write_json, write_markdown
from benchkit.stats import Samples, percentile, ratio, time_call
from benchkit.worker_path import StageTimes, WorkerPath

SCENARIO = "bench_operations"
DESCRIPTION = "Operation overhead: the worker's processing time against bare Pillow."
OPERATIONS = ("jpg", "png", "webp", "avif", "metadata")
# Short names of the test images under the plot's bars.
PLOT_LABELS = {
    "phone-12mp-jpeg": "12 MP JPEG",
    "jpeg-3mp": "3 MP JPEG",
    "png-alpha-3mp": "3 MP PNG",
}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}

FULL_RESIZE_WIDTH = 1920
SMOKE_RESIZE_WIDTH = 100
SMOKE_SCALE = 0.06
AVIF_PLUGIN_PYTHON_ENV = "PIXTOOLS_BENCH_AVIF_PLUGIN_PYTHON"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser(SCENARIO, DESCRIPTION)
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per image and operation (default 7, 5 for the 12 MP "
        "image, 1 with --smoke)",
    )
    parser.add_argument(
        "--resize-width",
        type=int,
        default=None,
        help=f"width the conversions resize to (default {FULL_RESIZE_WIDTH}, "
        f"{SMOKE_RESIZE_WIDTH} with --smoke)",
    )
    parser.add_argument(
        "--avif-plugin-python",
        type=Path,
        default=os.environ.get(AVIF_PLUGIN_PYTHON_ENV) or None,
        help="Python of a virtual environment with pillow-avif-plugin (default "
        f"${AVIF_PLUGIN_PYTHON_ENV}); without it only Pillow's own AVIF encoder "
        "is measured",
    )
    return parser.parse_args(argv)


def build_images(smoke: bool) -> list[BenchImage]:
    scale = SMOKE_SCALE if smoke else 1.0
    return [
        photo_jpeg("phone-12mp-jpeg", scaled_size(PHONE_12MP, scale), seed=0),
        photo_jpeg("jpeg-3mp", scaled_size(PHONE_3MP, scale), seed=3),
        alpha_png("png-alpha-3mp", scaled_size(ALPHA_PNG_SIZE, scale), seed=1),
    ]


def repeats_for(image: BenchImage, arguments: argparse.Namespace) -> int:
    if arguments.repeats is not None:
        return max(1, arguments.repeats)
    if arguments.smoke:
        return 1
    return 5 if image.megapixels > 8 else 7


def bare_call(image: BenchImage, operation: str, resize_width: int) -> Any:
    if operation == "metadata":
        return lambda: pillow_baseline.read_metadata(image.data)
    return lambda: pillow_baseline.convert(image.data, operation, resize_width)


def measure(
    worker: WorkerPath,
    image: BenchImage,
    operation: str,
    resize_width: int,
    repeats: int,
) -> dict[str, Any]:
    """Time the worker path and the bare loop on one image and operation."""
    job_id = str(uuid.uuid4())
    worker.store_source(job_id, image.data, CONTENT_TYPES[image.format])
    params: dict[str, Any] = {} if operation == "metadata" else {"width": resize_width}
    bare = bare_call(image, operation, resize_width)

    # One untimed run of each warms caches and lazily loaded codecs.
    worker.run(job_id, operation, params)
    bare()

    worker_samples, bare_samples = Samples(), Samples()
    stages: list[StageTimes] = []
    bare_result: Any = None
    for index in range(repeats):
        # Alternating the order keeps a slow moment from hitting only one side.
        if index % 2 == 0:
            stages.append(
                time_call(lambda: worker.run(job_id, operation, params), worker_samples)
            )
            bare_result = time_call(bare, bare_samples)
        else:
            bare_result = time_call(bare, bare_samples)
            stages.append(
                time_call(lambda: worker.run(job_id, operation, params), worker_samples)
            )

    last = stages[-1]
    bare_bytes = bare_result if isinstance(bare_result, bytes) else bare_result[0]
    row: dict[str, Any] = {
        "image": image.name,
        "operation": operation,
        "repeats": repeats,
        "worker_wall_ms": worker_samples.wall_ms,
        "worker_cpu_ms": worker_samples.cpu_ms,
        "bare_wall_ms": bare_samples.wall_ms,
        "bare_cpu_ms": bare_samples.cpu_ms,
        "worker_p50_ms": round(worker_samples.wall_p50, 2),
        "bare_p50_ms": round(bare_samples.wall_p50, 2),
        "worker_cpu_p50_ms": round(worker_samples.cpu_p50, 2),
        "bare_cpu_p50_ms": round(bare_samples.cpu_p50, 2),
        "get_p50_ms": round(percentile([s.get * 1000 for s in stages], 50), 3),
        "process_p50_ms": round(percentile([s.process * 1000 for s in stages], 50), 2),
        "put_p50_ms": round(percentile([s.put * 1000 for s in stages], 50), 3),
        "ratio_wall": ratio(worker_samples.wall_p50, bare_samples.wall_p50),
        "ratio_cpu": ratio(worker_samples.cpu_p50, bare_samples.cpu_p50),
        "worker_output_bytes": last.output_bytes,
        "bare_output_bytes": len(bare_bytes),
        "worker_output_size": [last.width, last.height],
        "bare_output_size": (
            None if isinstance(bare_result, bytes) else [bare_result[1], bare_result[2]]
        ),
    }
    return row


def operations_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "image",
        "operation",
        "worker wall ms",
        "get ms",
        "process ms",
        "put ms",
        "bare wall ms",
        "worker CPU ms",
        "bare CPU ms",
        "ratio (wall)",
        "ratio (CPU)",
        "worker bytes",
        "bare bytes",
    ]
    table_rows = [
        [
            row["image"],
            row["operation"],
            row["worker_p50_ms"],
            row["get_p50_ms"],
            row["process_p50_ms"],
            row["put_p50_ms"],
            row["bare_p50_ms"],
            row["worker_cpu_p50_ms"],
            row["bare_cpu_p50_ms"],
            row["ratio_wall"],
            row["ratio_cpu"],
            row["worker_output_bytes"],
            row["bare_output_bytes"],
        ]
        for row in rows
    ]
    return markdown_table(headers, table_rows)


def plot_operations(rows: list[dict[str, Any]], folder: Path) -> list[str]:
    labels = [
        f"{row['operation']}\n{PLOT_LABELS.get(row['image'], row['image'])}"
        for row in rows
    ]
    path = folder / "operations.png"
    bar_chart(
        path,
        labels,
        {
            "PixTools worker path": [row["worker_p50_ms"] for row in rows],
            "bare Pillow": [row["bare_p50_ms"] for row in rows],
        },
        ylabel="median ms per operation (log)",
        title="Operation time: worker path vs bare Pillow",
        log_scale=True,
        figure_size=(11.0, 4.0),
        label_rotation=0,
    )
    return [path.name]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse_arguments(argv)
    configure_bench_logging()
    folder = output_dir(arguments, SCENARIO)
    resize_width = arguments.resize_width or (
        SMOKE_RESIZE_WIDTH if arguments.smoke else FULL_RESIZE_WIDTH
    )
    results: dict[str, Any] = run_header(SCENARIO, arguments)
    results["command"] = command_line(SCENARIO, argv)
    results["resize_width"] = resize_width

    print("building test images", flush=True)
    images = build_images(arguments.smoke)
    results["images"] = [image.describe() for image in images]

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-operations-") as temp:
        worker = WorkerPath(Path(temp) / "storage")
        for image in images:
            for operation in OPERATIONS:
                row = measure(
                    worker,
                    image,
                    operation,
                    resize_width,
                    repeats_for(image, arguments),
                )
                print(
                    f"{image.name:>16} {operation:>8}: "
                    f"worker {row['worker_p50_ms']} ms, "
                    f"bare {row['bare_p50_ms']} ms, ratio {row['ratio_wall']}",
                    flush=True,
                )
                rows.append(row)

        results["operations"] = rows
        results["avif_encoders"] = avif_compare.compare_encoders(
            images[0],
            resize_width,
            Path(temp) / "avif",
            plugin_python=arguments.avif_plugin_python,
            repeats=1 if arguments.smoke else 5,
        )

    plots = plot_operations(rows, folder)
    results["plots"] = plots
    results.update(run_footer())
    write_json(folder / "results.json", results)
    write_markdown(
        folder / "results.md",
        "Operation overhead",
        [
            machine_summary(results),
            f"Command: `{results['command']}`. Conversions resize to "
            f"{resize_width} px wide. Times are medians of alternating runs, as "
            "wall clock and as process CPU time. Ratio = worker path / bare Pillow.",
            operations_table(rows),
            avif_compare.markdown(results["avif_encoders"]),
        ],
    )
    print(f"results in {folder}", flush=True)
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
