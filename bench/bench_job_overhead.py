"""Job overhead: time from POST to the final state minus the operations' own time.

The script starts the platform itself (a fresh PostgreSQL database, a RabbitMQ
vhost, Redis, a moto S3 server, the API under uvicorn and the standard worker, all
on 127.0.0.1), submits jobs one at a time and reads each job resource. The
overhead of a job is

    (job finished_at - time the POST was sent) - operations' busy time

where the busy time is the union of the operations' [started_at, finished_at]
intervals. It covers the upload, storage in S3, the database rows, the broker
round trips, the worker's task start and the finalization (ZIP bundle). The
client-observed variant uses the moment polling saw the final state instead.

    python bench/bench_job_overhead.py [--smoke] [--jobs N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchkit  # noqa: F401  (adds the PixTools source roots to sys.path)
import httpx
from benchkit.cli import (
    build_parser,
    command_line,
    configure_bench_logging,
    output_dir,
    run_footer,
    run_header,
)
from benchkit.client import (
    operations_busy_seconds,
    parse_time,
    submit_job,
    wait_for_final,
)
from benchkit.images import BenchImage, small_jpeg
from benchkit.machine import machine_summary
from benchkit.platform import PlatformOptions, running_platform
from benchkit.report import (
    bar_chart,
    cdf_chart,
    markdown_table,
    write_json,
    write_markdown,
)
from benchkit.stats import summarize

SCENARIO = "bench_job_overhead"
DESCRIPTION = "Job overhead: POST to final state minus the operations' own time."

# Job kinds: a name, the operations and their parameters.
JOB_KINDS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "webp": (["webp"], {}),
    "jpg+webp+metadata": (["jpg", "webp", "metadata"], {"jpg": {"width": 320}}),
}
WARMUP_JOBS = 3
POLL_INTERVAL_SECONDS = 0.02
JOB_TIMEOUT_SECONDS = 120.0


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser(SCENARIO, DESCRIPTION)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="measured jobs per job kind (default 100, 3 with --smoke)",
    )
    return parser.parse_args(argv)


def job_record(
    kind: str, sent_at: float, post_ms: float, resource: dict[str, Any], seen_at: float
) -> dict[str, Any]:
    finished = parse_time(resource.get("finished_at"))
    created = parse_time(resource.get("created_at"))
    busy = operations_busy_seconds(resource)
    starts = [parse_time(op.get("started_at")) for op in resource["operations"]]
    ends = [parse_time(op.get("finished_at")) for op in resource["operations"]]
    first_start = min((s for s in starts if s is not None), default=None)
    last_end = max((e for e in ends if e is not None), default=None)

    record: dict[str, Any] = {
        "kind": kind,
        "job_id": resource["job_id"],
        "status": resource["status"],
        "post_ms": round(post_ms, 2),
        "busy_ms": round(busy * 1000, 2),
        "client_total_ms": round((seen_at - sent_at) * 1000, 2),
        "client_overhead_ms": round((seen_at - sent_at - busy) * 1000, 2),
        "server_total_ms": None,
        "overhead_ms": None,
        "queue_wait_ms": None,
        "finalize_ms": None,
    }
    if finished is not None:
        record["server_total_ms"] = round((finished - sent_at) * 1000, 2)
        record["overhead_ms"] = round((finished - sent_at - busy) * 1000, 2)
    if created is not None and first_start is not None:
        # From the job row's commit to the first operation's start: broker and
        # worker pick-up.
        record["queue_wait_ms"] = round((first_start - created) * 1000, 2)
    if finished is not None and last_end is not None:
        record["finalize_ms"] = round((finished - last_end) * 1000, 2)
    return record


async def run_jobs(
    base_url: str, image: BenchImage, jobs_per_kind: int
) -> tuple[list[dict[str, Any]], list[str]]:
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for kind, (operations, params) in JOB_KINDS.items():
            for index in range(WARMUP_JOBS + jobs_per_kind):
                submission = await submit_job(client, image, operations, params)
                if not submission.accepted or submission.job_id is None:
                    problems.append(f"{kind}: POST failed: {submission.error}")
                    continue
                resource, seen_at = await wait_for_final(
                    client,
                    submission.job_id,
                    poll_interval=POLL_INTERVAL_SECONDS,
                    timeout=JOB_TIMEOUT_SECONDS,
                )
                if resource is None or resource["status"] != "COMPLETED":
                    status = None if resource is None else resource["status"]
                    problems.append(f"{kind}: job {submission.job_id} ended {status}")
                    continue
                if index < WARMUP_JOBS:
                    continue
                records.append(
                    job_record(
                        kind,
                        submission.sent_at,
                        submission.latency_ms,
                        resource,
                        seen_at,
                    )
                )
    return records, problems


def summaries(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for kind in JOB_KINDS:
        rows = [r for r in records if r["kind"] == kind]
        result[kind] = {
            field: summarize([r[field] for r in rows if r[field] is not None], 1)
            for field in (
                "overhead_ms",
                "client_overhead_ms",
                "busy_ms",
                "post_ms",
                "queue_wait_ms",
                "finalize_ms",
                "server_total_ms",
            )
        }
    return result


def summary_table(stats: dict[str, dict[str, Any]]) -> str:
    headers = ["job kind", "measure", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    labels = {
        "overhead_ms": "overhead (finished_at)",
        "client_overhead_ms": "overhead (client saw final)",
        "busy_ms": "operations' own time",
        "post_ms": "POST latency",
        "queue_wait_ms": "created -> first operation start",
        "finalize_ms": "last operation -> finished",
    }
    rows = []
    for kind, fields in stats.items():
        for field, label in labels.items():
            summary = fields[field]
            rows.append(
                [
                    kind,
                    label,
                    summary["count"],
                    summary["p50"],
                    summary["p90"],
                    summary["p99"],
                    summary["max"],
                ]
            )
    return markdown_table(headers, rows)


def plot(
    records: list[dict[str, Any]], stats: dict[str, Any], folder: Path
) -> list[str]:
    cdf_path = folder / "overhead_cdf.png"
    cdf_chart(
        cdf_path,
        {
            kind: [
                r["overhead_ms"]
                for r in records
                if r["kind"] == kind and r["overhead_ms"] is not None
            ]
            for kind in JOB_KINDS
        },
        xlabel="job overhead, ms",
        title="Job overhead (POST to finished_at minus operations' time)",
    )
    bars_path = folder / "overhead_percentiles.png"
    kinds = list(JOB_KINDS)
    bar_chart(
        bars_path,
        kinds,
        {
            quantile: [stats[kind]["overhead_ms"][quantile] for kind in kinds]
            for quantile in ("p50", "p90", "p99")
        },
        ylabel="ms",
        title="Job overhead percentiles",
    )
    return [cdf_path.name, bars_path.name]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse_arguments(argv)
    configure_bench_logging()
    folder = output_dir(arguments, SCENARIO)
    jobs_per_kind = arguments.jobs or (3 if arguments.smoke else 100)
    results: dict[str, Any] = run_header(SCENARIO, arguments)
    results["command"] = command_line(SCENARIO, argv)
    image = small_jpeg()
    results["image"] = image.describe()
    results["job_kinds"] = {
        k: {"operations": o, "params": p} for k, (o, p) in JOB_KINDS.items()
    }

    started = time.monotonic()
    with running_platform(folder, PlatformOptions(standard_worker=True)) as platform:
        results["broker_isolated_vhost"] = platform.broker_isolated
        records, problems = asyncio.run(
            run_jobs(platform.base_url, image, jobs_per_kind)
        )
        results["job_rows"] = platform.count_rows("SELECT count(*) FROM jobs")
    results["duration_s"] = round(time.monotonic() - started, 1)

    results["jobs_measured"] = len(records)
    results["jobs_expected"] = jobs_per_kind * len(JOB_KINDS)
    results["jobs_submitted"] = (jobs_per_kind + WARMUP_JOBS) * len(JOB_KINDS)
    results["problems"] = problems
    results["summary"] = summaries(records)
    results["jobs"] = records
    results["plots"] = plot(records, results["summary"], folder)

    results.update(run_footer())
    write_json(folder / "results.json", results)
    write_markdown(
        folder / "results.md",
        "Job overhead",
        [
            machine_summary(results),
            f"Command: `{results['command']}`. {jobs_per_kind} jobs per kind, one at a "
            f"time, after {WARMUP_JOBS} warm-up jobs; source {image.name} "
            f"({image.describe()['size_bytes']} bytes). PostgreSQL, RabbitMQ, Redis "
            "and moto S3 on 127.0.0.1; standard worker with 2 processes.",
            summary_table(results["summary"]),
            "Problems: " + ("; ".join(problems) if problems else "none"),
        ],
    )
    print(f"results in {folder}", flush=True)
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
