"""Denoise quality measured through the HTTP API, against the in-process evaluation.

    python bench/bench_denoise_api.py --datasets-dir DIR [--limit N] [--precision P]
        [--views V]
    python bench/bench_denoise_api.py --images FOLDER [--sigmas 15 25 50]
    python bench/bench_denoise_api.py --smoke

The script starts the platform itself (a fresh PostgreSQL database, a RabbitMQ
vhost, Redis, a moto S3 server, the API, the standard worker that finalizes jobs
and the ML worker, all on 127.0.0.1). For each clean image, in file-name order,
and each sigma it adds white Gaussian noise with the seeds of
``pixtools_worker_ml.evaluate`` (``noise_seed(index, sigma)``). It clips and
rounds the noisy image to 8 bits and uploads it as a PNG with one denoise
operation (png output). Jobs run one at a time. The script downloads each
result and computes its PSNR against the clean image with ``psnr_uint8``.

Afterwards ``evaluate(denoiser, paths, sigmas, eight_bit=True)`` scores the same
images in this process, with the same weights, precision, tile settings and
torch thread count as the ML worker, and the views the worker logged (with
--views auto it measures its speed at start-up and picks them). Every in-process
output is also compared with the API's output pixel by pixel. With a fixed
precision the two PSNRs should agree within AGREEMENT_TOLERANCE_DB. With precision
auto, the worker and this process each run a timing probe and may pick different
precisions, so both picks are recorded. --smoke uses two tiny synthetic images
instead of a folder. Results go to denoise_api.json and denoise_api.md in --output-dir.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import benchkit  # noqa: F401  (adds the PixTools source roots to sys.path)
import httpx
import numpy as np
import structlog
from benchkit.cli import (
    build_parser,
    command_line,
    configure_bench_logging,
    output_dir,
    run_footer,
    run_header,
)
from benchkit.client import (
    FINAL_JOB_STATUSES,
    parse_time,
    submit_job,
    wait_for_final,
)
from benchkit.images import BenchImage, synthesize_photo
from benchkit.machine import machine_summary
from benchkit.platform import LOCALHOST, PlatformOptions, running_platform
from benchkit.report import markdown_table, write_json, write_markdown
from benchkit.stats import summarize
from numpy.typing import NDArray
from PIL import Image
from pydantic import ValidationError

from pixtools_shared.settings import Settings
from pixtools_worker_ml.data import (
    UInt8Array,
    add_gaussian_noise,
    list_images,
    load_rgb,
    noise_seed,
    psnr_uint8,
    resolve_datasets_dir,
    to_eight_bit,
)
from pixtools_worker_ml.evaluate import evaluate
from pixtools_worker_ml.inference import Denoiser, TileOptions
from pixtools_worker_ml.runtime import PRECISIONS
from pixtools_worker_ml.views import VIEW_COUNTS

log = structlog.get_logger(__name__)

SCENARIO = "bench_denoise_api"
DESCRIPTION = "Denoise PSNR through the HTTP API against the in-process evaluation."
DEFAULT_SIGMAS = (15.0, 25.0, 50.0)
# The worker's own defaults, so that both paths tile the same way.
DEFAULT_TILE_SIZE: int = Settings.model_fields["DENOISE_TILE_SIZE"].default
DEFAULT_TILE_OVERLAP: int = Settings.model_fields["DENOISE_TILE_OVERLAP"].default
VIEW_CHOICES = ["auto", *(str(count) for count in VIEW_COUNTS)]
# Width and height of the synthetic clean images of --smoke. The odd sizes make
# the network pad the image to a multiple of its pixel-unshuffle scale.
SMOKE_SIZES = ((96, 64), (81, 57))
WARMUP_SIZE = (64, 48)
AGREEMENT_TOLERANCE_DB = 0.01
POLL_INTERVAL_SECONDS = 0.05
JOB_TIMEOUT_SECONDS = 600.0
# A Redis database apart from the other benchmarks (14) and the end-to-end tests
# (13). Each run gets a new moto server, and the bucket names only label this
# script's objects.
REDIS_DB = 12
BUCKETS = {
    "S3_BUCKET_UPLOADS": "bench-denoise-api-uploads",
    "S3_BUCKET_OUTPUTS": "bench-denoise-api-outputs",
    "S3_BUCKET_BUNDLES": "bench-denoise-api-bundles",
}
ML_WORKER_LOG = "worker-ml.log"

# Key of one upload: (image index, sigma).
JobKey = tuple[int, float]


@dataclass
class JobOutcome:
    """One uploaded noisy image: its scores and timings, and the API's output."""

    record: dict[str, Any]
    output: UInt8Array | None = None


@dataclass
class UploadSet:
    """The clean images of a run and a fingerprint of every noisy upload."""

    paths: list[Path]
    sigmas: list[float]
    upload_digests: dict[JobKey, str] = field(default_factory=dict)

    def keys(self) -> list[JobKey]:
        """Return the (index, sigma) pairs in the order evaluate() visits them."""
        return [
            (index, sigma) for index in range(len(self.paths)) for sigma in self.sigmas
        ]


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser(SCENARIO, DESCRIPTION)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", type=Path, help="folder of clean colour images")
    source.add_argument(
        "--datasets-dir",
        help="folder that contains CBSD68 (default: the PIXTOOLS_DATASETS_DIR "
        "environment variable)",
    )
    parser.add_argument(
        "--sigmas",
        type=float,
        nargs="+",
        default=list(DEFAULT_SIGMAS),
        help="noise levels on the 0-255 scale (default 15 25 50)",
    )
    parser.add_argument(
        "--limit", type=int, help="use only the first N images in file-name order"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="DENOISE_PRECISION of the ML worker and of the in-process denoiser "
        "(default auto)",
    )
    parser.add_argument(
        "--views",
        default="auto",
        choices=VIEW_CHOICES,
        help="DENOISE_VIEWS of the ML worker (default auto); the in-process "
        "denoiser runs the views the worker logged",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads of the ML worker and of this process (default: the "
        "TORCH_THREADS environment variable, else the CPU share)",
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        default=DEFAULT_TILE_SIZE,
        help=f"DENOISE_TILE_SIZE in pixels for both paths (default "
        f"{DEFAULT_TILE_SIZE})",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=DEFAULT_TILE_OVERLAP,
        help=f"DENOISE_TILE_OVERLAP in pixels for both paths (default "
        f"{DEFAULT_TILE_OVERLAP})",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="denoiser weights for both paths (default: DENOISE_MODEL_PATH, else "
        "the weights bundled with the ML worker)",
    )
    arguments = parser.parse_args(argv)

    if arguments.smoke and (arguments.images or arguments.datasets_dir):
        parser.error(
            "--smoke builds its own images; leave out --images and --datasets-dir"
        )
    if arguments.limit is not None and arguments.limit < 1:
        parser.error(f"--limit must be at least 1, got {arguments.limit}")
    if any(sigma < 0 for sigma in arguments.sigmas):
        parser.error(f"--sigmas must not be negative, got {arguments.sigmas}")
    # evaluate() keys its results by sigma, so a repeated sigma would merge rows.
    if len(set(arguments.sigmas)) != len(arguments.sigmas):
        parser.error(f"--sigmas must not repeat a value, got {arguments.sigmas}")
    return arguments


def platform_settings(arguments: argparse.Namespace) -> dict[str, str]:
    """Return the settings that the platform's processes get on top of benchkit's."""
    settings = {
        "DENOISE_PRECISION": arguments.precision,
        "DENOISE_VIEWS": arguments.views,
        "DENOISE_TILE_SIZE": str(arguments.tile_size),
        "DENOISE_TILE_OVERLAP": str(arguments.tile_overlap),
        "ML_WORKER_CONCURRENCY": "1",
        # JSON log lines, so the ML worker's precision pick and timings can be
        # read back from its log.
        "LOG_JSON": "true",
        # 0 turns the workers' /metrics servers off, because their fixed default
        # ports may be taken by another run.
        "WORKER_METRICS_PORT": "0",
        **BUCKETS,
    }
    if arguments.threads is not None:
        settings["TORCH_THREADS"] = str(arguments.threads)
    if arguments.weights is not None:
        settings["DENOISE_MODEL_PATH"] = str(arguments.weights.resolve())
    # Settings rejects what the worker would reject (odd tiles, too much
    # overlap), before any server starts.
    try:
        Settings.model_validate(settings)
    except ValidationError as exc:
        raise SystemExit(f"invalid denoise settings: {exc}") from exc
    return settings


def build_smoke_images(folder: Path) -> Path:
    """Write the clean synthetic images of --smoke as PNGs and return their folder."""
    images = folder / "smoke_images"
    images.mkdir(parents=True, exist_ok=True)
    for index, (width, height) in enumerate(SMOKE_SIZES):
        pixels = synthesize_photo(width, height, seed=index, noise_sigma=0.0)
        Image.fromarray(pixels, "RGB").save(images / f"smoke-{width}x{height}.png")
    return images


def image_paths(arguments: argparse.Namespace, folder: Path) -> list[Path]:
    if arguments.smoke:
        source = build_smoke_images(folder)
    elif arguments.images is not None:
        source = arguments.images
    else:
        source = resolve_datasets_dir(arguments.datasets_dir) / "CBSD68"
    paths: list[Path] = list_images(source)[: arguments.limit]
    return paths


def to_unit_range(levels: UInt8Array) -> NDArray[np.float32]:
    """Scale 8-bit levels to float32 on [0, 1], as evaluate() scales images."""
    return levels.astype(np.float32) / np.float32(255.0)


def encode_png(pixels: UInt8Array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def noisy_upload(clean: NDArray[np.float32], index: int, sigma: float) -> UInt8Array:
    """Return the noisy image of evaluate(eight_bit=True) as 8-bit levels."""
    noisy = to_eight_bit(add_gaussian_noise(clean, sigma, noise_seed(index, sigma)))
    levels: UInt8Array = np.rint(noisy * 255.0).astype(np.uint8)
    return levels


def levels_digest(levels: UInt8Array) -> str:
    return hashlib.sha256(np.ascontiguousarray(levels).tobytes()).hexdigest()


def decode_output(data: bytes) -> tuple[UInt8Array, dict[str, Any]]:
    """Decode a downloaded result into RGB pixels and a description of the file."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        facts = {
            "format": image.format,
            "mode": image.mode,
            "width": image.width,
            "height": image.height,
            "info_keys": sorted(image.info),
        }
        pixels: UInt8Array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return pixels, facts


async def download_result(client: httpx.AsyncClient, url: str) -> bytes:
    """GET a result URL, which must point at this run's servers on 127.0.0.1."""
    host = urlsplit(url).hostname
    if host != LOCALHOST:
        raise RuntimeError(f"result URL host {host!r} is not {LOCALHOST}: {url}")
    response = await client.get(url)
    response.raise_for_status()
    return response.content


def operation_times(
    resource: dict[str, Any], sent_at: float
) -> tuple[float | None, float | None]:
    """Return (upload to result stored, denoise operation) in seconds."""
    operation = resource["operations"][0]
    started = parse_time(operation.get("started_at"))
    finished = parse_time(operation.get("finished_at"))
    if finished is None:
        return None, None
    busy = None if started is None else round(finished - started, 3)
    return round(finished - sent_at, 3), busy


async def run_job(
    client: httpx.AsyncClient, image: BenchImage, filename: str
) -> tuple[dict[str, Any], bytes | None]:
    """Submit one denoise job, wait for it and download its result.

    Returns the job's record and the result bytes, or None when the job failed.
    """
    record: dict[str, Any] = {"job_id": None, "status": None, "error": None}

    submission = await submit_job(
        client,
        image,
        ["denoise"],
        {"denoise": {"format": "png"}},
        filename=filename,
    )
    if not submission.accepted or submission.job_id is None:
        record["error"] = f"POST failed ({submission.status_code}): {submission.error}"
        return record, None
    record["job_id"] = submission.job_id

    resource, seen_at = await wait_for_final(
        client,
        submission.job_id,
        poll_interval=POLL_INTERVAL_SECONDS,
        timeout=JOB_TIMEOUT_SECONDS,
    )
    record["upload_to_final_s"] = round(seen_at - submission.sent_at, 3)
    if resource is None or resource["status"] not in FINAL_JOB_STATUSES:
        record["error"] = f"job not final after {JOB_TIMEOUT_SECONDS:.0f} s"
        return record, None
    record["status"] = resource["status"]

    result_s, operation_s = operation_times(resource, submission.sent_at)
    record["upload_to_result_s"] = result_s
    record["denoise_operation_s"] = operation_s
    url = resource["result_urls"].get("denoise")
    if resource["status"] != "COMPLETED" or url is None:
        record["error"] = f"job ended {resource['status']}: {resource['operations']}"
        return record, None
    try:
        return record, await download_result(client, url)
    except httpx.HTTPError as exc:
        record["error"] = f"download of the result failed: {exc!r}"
        log.warning("bench_download_failed", job_id=submission.job_id, error=repr(exc))
        return record, None


async def run_warmup(client: httpx.AsyncClient) -> None:
    """Run one small unmeasured job, so the first measured job starts warm."""
    width, height = WARMUP_SIZE
    data = encode_png(synthesize_photo(width, height, seed=99))
    image = BenchImage("warmup", data, "PNG", width, height)
    record, _ = await run_job(client, image, "warmup.png")
    if record["error"] is not None:
        raise RuntimeError(f"the warm-up denoise job failed: {record['error']}")


async def run_uploads(base_url: str, uploads: UploadSet) -> dict[JobKey, JobOutcome]:
    """Upload every noisy image, one job at a time, and score the results."""
    outcomes: dict[JobKey, JobOutcome] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        await run_warmup(client)
        for index, path in enumerate(uploads.paths):
            clean_levels = load_rgb(path)
            clean = to_unit_range(clean_levels)
            height, width = clean_levels.shape[:2]
            for sigma in uploads.sigmas:
                levels = noisy_upload(clean, index, sigma)
                uploads.upload_digests[(index, sigma)] = levels_digest(levels)
                image = BenchImage(path.stem, encode_png(levels), "PNG", width, height)
                filename = f"{path.stem}-sigma{sigma:g}.png"
                record, data = await run_job(client, image, filename)
                record.update(
                    image=path.name,
                    index=index,
                    sigma=sigma,
                    width=width,
                    height=height,
                    upload_bytes=len(image.data),
                    noisy_psnr_db=psnr_uint8(to_unit_range(levels), clean),
                )
                outcome = JobOutcome(record)
                if data is not None:
                    output, record["output"] = decode_output(data)
                    if output.shape == clean_levels.shape:
                        outcome.output = output
                        record["api_psnr_db"] = psnr_uint8(to_unit_range(output), clean)
                    else:
                        record["error"] = (
                            f"output shape {output.shape} differs from the "
                            f"upload's {clean_levels.shape}"
                        )
                outcomes[(index, sigma)] = outcome
                log.info(
                    "bench_denoise_job_done",
                    image=path.name,
                    sigma=sigma,
                    job_id=record["job_id"],
                    status=record["status"],
                    noisy_psnr_db=round(record["noisy_psnr_db"], 3),
                    api_psnr_db=record.get("api_psnr_db"),
                    upload_to_final_s=record.get("upload_to_final_s"),
                    error=record["error"],
                )
    return outcomes


class ComparingDenoiser:
    """A stand-in for Denoiser in evaluate() that compares its outputs with the API's.

    evaluate() calls denoise_array once per image and sigma, images in the order
    of its paths and sigmas in the given order, so the n-th call belongs to the
    n-th key of UploadSet.keys(). Each call checks that its noisy input has the
    same 8-bit levels as that upload, scores the output against the clean image
    and counts the 8-bit values that differ from the API's output.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        uploads: UploadSet,
        api_outputs: dict[JobKey, UInt8Array | None],
    ) -> None:
        self.denoiser = denoiser
        self.uploads = uploads
        self.keys = uploads.keys()
        self.api_outputs = api_outputs
        self.calls = 0
        self.comparisons: dict[JobKey, dict[str, Any]] = {}
        # The clean image of the latest index, loaded once for all its sigmas.
        self._clean: tuple[int, NDArray[np.float32]] | None = None

    def denoise_array(
        self,
        source: NDArray[Any],
        output: NDArray[Any] | None = None,
        deadline: float | None = None,
    ) -> NDArray[Any]:
        key = self.keys[self.calls]
        self.calls += 1
        index, sigma = key
        source_levels: UInt8Array = np.rint(source * 255.0).astype(np.uint8)
        if levels_digest(source_levels) != self.uploads.upload_digests.get(key):
            raise RuntimeError(
                f"evaluate() denoised a noisy image that differs from the upload of "
                f"image {index} at sigma {sigma:g}, so its noise or its image order "
                "differs from this script's"
            )
        restored = self.denoiser.denoise_array(source, output, deadline)
        restored_levels = np.rint(np.clip(restored, 0.0, 1.0) * 255.0).astype(np.uint8)
        comparison: dict[str, Any] = {
            "in_process_psnr_db": psnr_uint8(restored, self.clean(index))
        }
        api_output = self.api_outputs.get(key)
        if api_output is not None and api_output.shape == restored_levels.shape:
            difference = np.abs(api_output.astype(np.int16) - restored_levels)
            comparison["max_difference_levels"] = int(difference.max())
            comparison["differing_values"] = int(np.count_nonzero(difference))
        self.comparisons[key] = comparison
        return restored

    def clean(self, index: int) -> NDArray[np.float32]:
        """Return the clean image ``index`` on [0, 1], as evaluate() scales it."""
        if self._clean is None or self._clean[0] != index:
            levels = load_rgb(self.uploads.paths[index])
            self._clean = (index, to_unit_range(levels))
        return self._clean[1]


def run_in_process(
    arguments: argparse.Namespace,
    uploads: UploadSet,
    api_outputs: dict[JobKey, UInt8Array | None],
    views: int | str,
) -> tuple[dict[str, Any], dict[JobKey, dict[str, Any]]]:
    """Run evaluate() on the uploads' images and compare each output with the API's.

    ``views`` is the ML worker's view count, or the --views setting when the
    worker's log lacks it. Returns the evaluation summary and the per-upload
    comparisons.
    """
    weights = arguments.weights or Settings().DENOISE_MODEL_PATH
    denoiser = Denoiser.load(
        weights,
        tiles=TileOptions(arguments.tile_size, arguments.tile_overlap),
        max_pixels=10**9,
        precision=arguments.precision,
        threads=arguments.threads,
        views=views,
    )
    comparing = ComparingDenoiser(denoiser, uploads, api_outputs)
    started = time.monotonic()
    # evaluate() calls only denoise_array, which ComparingDenoiser provides.
    results = evaluate(
        cast(Denoiser, comparing), uploads.paths, uploads.sigmas, eight_bit=True
    )
    seconds = time.monotonic() - started
    if comparing.calls != len(comparing.keys):
        raise RuntimeError(
            f"evaluate() denoised {comparing.calls} images, expected "
            f"{len(comparing.keys)}"
        )
    summary = {
        "precision": denoiser.precision,
        "views": denoiser.views,
        "threads": denoiser.threads,
        "tile_size": denoiser.tiles.tile_size,
        "tile_overlap": denoiser.tiles.tile_overlap,
        "weights": str(weights) if weights else "bundled",
        "seconds": round(seconds, 1),
        "results": {f"{sigma:g}": scores for sigma, scores in results.items()},
    }
    return summary, comparing.comparisons


def read_worker_log(path: Path) -> dict[str, Any]:
    """Read the ML worker's precision, views and per-job denoise times from its log."""
    picks: list[dict[str, Any]] = []
    seconds_by_job: dict[str, float] = {}
    try:
        lines = path.read_text("utf-8", errors="replace").splitlines()
    except OSError as exc:
        log.warning("bench_worker_log_unreadable", path=str(path), error=str(exc))
        lines = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        event = entry.get("event")
        if event == "precision_probe":
            picks.append(
                {
                    "event": event,
                    "chosen": entry.get("chosen"),
                    "seconds": entry.get("seconds"),
                }
            )
        elif event == "views_probe":
            picks.append(
                {
                    "event": event,
                    "chosen": entry.get("chosen"),
                    "seconds_per_megapixel": entry.get("seconds_per_megapixel"),
                }
            )
        elif event == "denoiser_loaded":
            picks.append(
                {
                    "event": event,
                    "precision": entry.get("precision"),
                    "views": entry.get("views"),
                    "threads": entry.get("threads"),
                    "tile_size": entry.get("tile_size"),
                    "tile_overlap": entry.get("tile_overlap"),
                }
            )
        elif event == "image_denoised" and entry.get("job_id"):
            seconds_by_job[str(entry["job_id"])] = float(entry["seconds"])
    loaded = [pick for pick in picks if pick["event"] == "denoiser_loaded"]
    # Under views auto the worker logs "auto" at load and its pick at first use.
    chosen_views = [pick["chosen"] for pick in picks if pick["event"] == "views_probe"]
    views = chosen_views[-1] if chosen_views else None
    if views is None and loaded and isinstance(loaded[-1]["views"], int):
        views = loaded[-1]["views"]
    return {
        "events": picks,
        # ML_WORKER_CONCURRENCY is 1, so one process loads one Denoiser.
        "precision": loaded[-1]["precision"] if loaded else None,
        "views": views,
        "denoise_seconds_by_job": seconds_by_job,
    }


def mean(values: list[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def sigma_rows(
    sigmas: list[float],
    records: list[dict[str, Any]],
    in_process: dict[str, Any],
    compared: bool,
) -> list[dict[str, Any]]:
    """Return one summary per sigma: the mean PSNRs and their difference."""
    rows = []
    for sigma in sigmas:
        jobs = [r for r in records if r["sigma"] == sigma]
        scored = [r for r in jobs if "api_psnr_db" in r]
        scores = in_process["results"][f"{sigma:g}"]
        api = mean([r["api_psnr_db"] for r in scored])
        # evaluate() averages over every image, so the difference is only
        # meaningful when every job returned a result.
        complete = len(scored) == len(jobs)
        difference = api - scores["restored"] if api is not None and complete else None
        level_differences = [
            r["max_difference_levels"] for r in jobs if "max_difference_levels" in r
        ]
        rows.append(
            {
                "sigma": sigma,
                "images": len(jobs),
                "api_results": len(scored),
                "noisy_psnr_db": mean([r["noisy_psnr_db"] for r in jobs]),
                "api_psnr_db": api,
                "in_process_psnr_db": scores["restored"],
                "in_process_noisy_psnr_db": scores["noisy"],
                "api_minus_in_process_db": difference,
                "max_difference_levels": max(level_differences, default=None),
                "differing_values": sum(r.get("differing_values", 0) for r in jobs),
                "within_tolerance": None
                if difference is None or not compared
                else abs(difference) <= AGREEMENT_TOLERANCE_DB,
            }
        )
    return rows


def timing_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return job wall times grouped by image size, largest images first."""
    sizes = sorted(
        {(r["width"], r["height"]) for r in records},
        key=lambda size: (-size[0] * size[1], size),
    )
    rows = []
    for width, height in sizes:
        jobs = [
            r
            for r in records
            if (r["width"], r["height"]) == (width, height) and r["error"] is None
        ]

        def values(name: str, jobs: list[dict[str, Any]] = jobs) -> list[float]:
            return [r[name] for r in jobs if r.get(name) is not None]

        rows.append(
            {
                "size": f"{width}x{height}",
                "megapixels": round(width * height / 1e6, 3),
                "jobs": len(jobs),
                "upload_to_result_s": summarize(values("upload_to_result_s"), 3),
                "upload_to_final_s": summarize(values("upload_to_final_s"), 3),
                "denoise_operation_s": summarize(values("denoise_operation_s"), 3),
                "worker_denoise_s": summarize(values("worker_denoise_s"), 3),
            }
        )
    return rows


def fixed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    # Adding 0.0 turns a rounded -0.0 into 0.0, which prints without a sign.
    return f"{round(value, digits) + 0.0:.{digits}f}"


def sigma_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "sigma",
        "images",
        "noisy upload (dB)",
        "API (dB)",
        "in-process (dB)",
        "API - in-process (dB)",
        "max pixel difference (levels)",
        "differing values",
    ]
    cells = [
        [
            f"{row['sigma']:g}",
            f"{row['api_results']}/{row['images']}",
            fixed(row["noisy_psnr_db"]),
            fixed(row["api_psnr_db"]),
            fixed(row["in_process_psnr_db"]),
            fixed(row["api_minus_in_process_db"], 4),
            row["max_difference_levels"],
            row["differing_values"],
        ]
        for row in rows
    ]
    return markdown_table(headers, cells)


def timing_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "image size",
        "jobs",
        "upload to result stored, p50 (s)",
        "upload to job final, p50 / max (s)",
        "denoise operation, p50 (s)",
        "denoiser call in worker, p50 (s)",
    ]
    cells = []
    for row in rows:
        final = row["upload_to_final_s"]
        cells.append(
            [
                f"{row['size']} ({row['megapixels']} MP)",
                row["jobs"],
                fixed(row["upload_to_result_s"]["p50"], 2),
                f"{fixed(final['p50'], 2)} / {fixed(final['max'], 2)}",
                fixed(row["denoise_operation_s"]["p50"], 2),
                fixed(row["worker_denoise_s"]["p50"], 2),
            ]
        )
    return markdown_table(headers, cells)


def comparison_summary(
    arguments: argparse.Namespace, worker: dict[str, Any], in_process: dict[str, Any]
) -> dict[str, Any]:
    """Return the precision and views of each path and whether the two are the same."""
    same_precision = (
        worker["precision"] == in_process["precision"]
        and worker["views"] == in_process["views"]
    )
    return {
        "precision_setting": arguments.precision,
        "worker_precision": worker["precision"],
        "in_process_precision": in_process["precision"],
        "views_setting": arguments.views,
        "worker_views": worker["views"],
        "in_process_views": in_process["views"],
        "same_precision": same_precision,
        "tolerance_db": AGREEMENT_TOLERANCE_DB,
    }


def comparison_sentence(comparison: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    worker = comparison["worker_precision"]
    sentence = (
        f"Precision setting {comparison['precision_setting']}, views setting "
        f"{comparison['views_setting']}: the ML worker ran "
        f"{worker or 'a precision missing from its log'} with "
        f"{comparison['worker_views']} view(s), the in-process denoiser "
        f"{comparison['in_process_precision']} with "
        f"{comparison['in_process_views']} view(s)."
    )
    if worker is None:
        return sentence + " The two paths were not compared."
    if not comparison["same_precision"]:
        return sentence + (
            " The two paths ran different precisions or views, so their PSNRs are not "
            f"expected to agree. Run again with --precision {worker} to compare "
            "them."
        )
    verdicts = [row["within_tolerance"] for row in rows]
    if all(verdict is True for verdict in verdicts):
        return sentence + (
            f" API and in-process PSNR agree within {AGREEMENT_TOLERANCE_DB} dB at "
            "every sigma."
        )
    return sentence + (
        f" API and in-process PSNR differ by more than {AGREEMENT_TOLERANCE_DB} dB, "
        "or could not be compared, at some sigma: see the table and the per-job "
        "records in denoise_api.json."
    )


def write_reports(folder: Path, results: dict[str, Any]) -> str:
    """Write denoise_api.json and denoise_api.md and return the markdown tables."""
    settings = results["settings"]
    images = results["images"]
    tables = "\n\n".join(
        [
            sigma_table(results["per_sigma"]),
            comparison_sentence(results["comparison"], results["per_sigma"]),
            "Job wall time, one job at a time. The upload is the POST. The result "
            "is stored when the denoise operation finishes, and the job is final "
            "once the standard worker has finalized it and polling has seen it.",
            timing_table(results["timings_by_size"]),
        ]
    )
    write_json(folder / "denoise_api.json", results)
    write_markdown(
        folder / "denoise_api.md",
        "Denoise through the API",
        [
            machine_summary(results),
            f"Date: {results['started_at']}. Command: `{results['command']}`.",
            f"{images['count']} images from {images['folder']}, sigmas "
            f"{', '.join(f'{s:g}' for s in settings['sigmas'])}. Noise from "
            "noise_seed(index, sigma) in file-name order, clipped and rounded to 8 "
            "bits, uploaded as PNG with one denoise operation (png output). PSNR "
            "with psnr_uint8 against the clean image, averaged over the images. "
            "In-process: evaluate(eight_bit=True) with the worker's weights, "
            f"precision, views, tiles ({settings['tile_size']} px, "
            f"{settings['tile_overlap']} px overlap) and "
            f"{results['in_process']['threads']} torch thread(s).",
            tables,
            "Problems: "
            + ("; ".join(results["problems"]) if results["problems"] else "none"),
        ],
    )
    return tables


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse_arguments(argv)
    configure_bench_logging()
    folder = output_dir(arguments, SCENARIO)
    settings = platform_settings(arguments)
    uploads = UploadSet(image_paths(arguments, folder), list(arguments.sigmas))
    results: dict[str, Any] = run_header(SCENARIO, arguments)
    results["command"] = command_line(SCENARIO, argv)
    results["images"] = {
        "folder": uploads.paths[0].parent.name,
        "count": len(uploads.paths),
        "names": [path.name for path in uploads.paths],
    }
    results["settings"] = {
        "sigmas": uploads.sigmas,
        "precision": arguments.precision,
        "views": arguments.views,
        "threads": arguments.threads,
        "tile_size": arguments.tile_size,
        "tile_overlap": arguments.tile_overlap,
        "weights": str(arguments.weights) if arguments.weights else None,
    }

    started = time.monotonic()
    options = PlatformOptions(
        standard_worker=True,
        ml_worker=True,
        worker_concurrency=1,
        redis_db=REDIS_DB,
        extra_environment=settings,
    )
    with running_platform(folder, options) as platform:
        results["broker_isolated_vhost"] = platform.broker_isolated
        outcomes = asyncio.run(run_uploads(platform.base_url, uploads))
        log_dir = platform.log_dir
    results["api_seconds"] = round(time.monotonic() - started, 1)
    worker = read_worker_log(log_dir / ML_WORKER_LOG)
    records = [outcome.record for outcome in outcomes.values()]
    for record in records:
        job_id = record["job_id"]
        record["worker_denoise_s"] = worker["denoise_seconds_by_job"].get(job_id)

    api_outputs = {key: outcome.output for key, outcome in outcomes.items()}
    views = worker["views"] or arguments.views
    in_process, comparisons = run_in_process(arguments, uploads, api_outputs, views)
    for key, comparison in comparisons.items():
        outcomes[key].record.update(comparison)

    comparison = comparison_summary(arguments, worker, in_process)
    results["worker"] = {
        "precision": worker["precision"],
        "views": worker["views"],
        "events": worker["events"],
    }
    results["in_process"] = in_process
    results["comparison"] = comparison
    results["per_sigma"] = sigma_rows(
        uploads.sigmas, records, in_process, comparison["same_precision"]
    )
    results["timings_by_size"] = timing_rows(records)
    results["problems"] = [
        f"{r['image']} sigma {r['sigma']:g}: {r['error']}"
        for r in records
        if r["error"] is not None
    ]
    results["jobs"] = records
    results.update(run_footer())
    tables = write_reports(folder, results)
    print(tables, flush=True)
    print(f"results in {folder}", flush=True)
    return results


if __name__ == "__main__":
    sys.exit(1 if main()["problems"] else 0)
