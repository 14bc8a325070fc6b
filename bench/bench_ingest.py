"""API ingest: accepted jobs per second and POST latency, driven by Locust.

The script starts the platform (fresh PostgreSQL database, RabbitMQ vhost, Redis,
moto S3, the API; the standard worker only with --with-worker), then runs Locust
headless against the API on 127.0.0.1 once per user count. Each Locust user
posts a 640x480 JPEG with one webp operation in a closed loop without waiting.
Every run is bounded by --duration and --max-requests. Afterwards the job rows
in the database are compared with the accepted responses.

    python bench/bench_ingest.py [--smoke] [--users 2,8] [--duration 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchkit  # noqa: F401  (adds the PixTools source roots to sys.path)
from benchkit.cli import (
    build_parser,
    command_line,
    configure_bench_logging,
    output_dir,
    run_footer,
    run_header,
)
from benchkit.images import small_jpeg
from benchkit.machine import machine_summary
from benchkit.platform import (
    PlatformOptions,
    RunningPlatform,
    child_environment,
    group_cpu_seconds,
    running_platform,
)
from benchkit.report import (
    bar_chart,
    cdf_chart,
    markdown_table,
    write_json,
    write_markdown,
)
from benchkit.stats import summarize

SCENARIO = "bench_ingest"
DESCRIPTION = "API ingest: accepted jobs per second and POST latency (Locust)."
LOCUSTFILE = Path(__file__).resolve().parent / "locustfiles" / "ingest.py"
# Requests sent in the first seconds of a run, while Locust starts its users and
# connections open, are left out of the throughput.
WARMUP_SECONDS = 2.0
LOCUST_EXTRA_SECONDS = 60


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser(SCENARIO, DESCRIPTION)
    parser.add_argument(
        "--users",
        default=None,
        help="comma-separated Locust user counts, one run each (default 2,8; "
        "2 with --smoke)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per run (default 40, 4 with --smoke)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="requests after which a run stops early (default 5000, 20 with --smoke)",
    )
    parser.add_argument(
        "--with-worker",
        action="store_true",
        help="also run the standard worker, so jobs are processed during ingest",
    )
    return parser.parse_args(argv)


def run_locust(
    platform: RunningPlatform,
    folder: Path,
    image_path: Path,
    users: int,
    duration: float,
    max_requests: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run one headless Locust test; return its request records and facts."""
    records_path = folder / f"locust_u{users}_records.jsonl"
    records_path.unlink(missing_ok=True)
    environment = child_environment(
        {
            "BENCH_IMAGE_PATH": str(image_path),
            "BENCH_RECORDS_PATH": str(records_path),
            "BENCH_MAX_REQUESTS": str(max_requests),
            "BENCH_OPERATIONS": json.dumps(["webp"]),
        }
    )
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{max(1, round(duration))}s",
        "--host",
        platform.base_url,
        "--only-summary",
        "--csv",
        str(folder / f"locust_u{users}"),
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "10",
        "--exit-code-on-error",
        "0",
    ]
    api = next(child for child in platform.children if child.name == "api")
    cpu_before = group_cpu_seconds(api.process.pid)
    started = time.monotonic()
    completed = subprocess.run(  # noqa: S603  (fixed argv built above)
        command,
        env=environment,
        capture_output=True,
        text=True,
        timeout=duration + LOCUST_EXTRA_SECONDS,
        check=False,
    )
    elapsed = time.monotonic() - started
    cpu_after = group_cpu_seconds(api.process.pid)
    (folder / f"locust_u{users}.log").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0 or not records_path.exists():
        raise RuntimeError(
            f"locust exited with {completed.returncode}:\n{completed.stderr[-3000:]}"
        )

    records = [
        json.loads(line) for line in records_path.read_text().splitlines() if line
    ]
    api_cpu = None
    if cpu_before is not None and cpu_after is not None:
        api_cpu = round(cpu_after - cpu_before, 2)
    return records, {"locust_seconds": round(elapsed, 1), "api_cpu_seconds": api_cpu}


def summarize_run(
    users: int, records: list[dict[str, Any]], facts: dict[str, Any], warmup: float
) -> dict[str, Any]:
    accepted = [r for r in records if r["status_code"] == 202 and r["job_id"]]
    failures = Counter(
        str(r["status_code"]) for r in records if r["status_code"] != 202
    )
    if records:
        first = min(r["sent_at"] for r in records)
        last_end = max(r["sent_at"] + r["latency_ms"] / 1000 for r in records)
    else:
        first = last_end = 0.0
    window_start = first + warmup
    in_window = [r for r in accepted if r["sent_at"] >= window_start]
    window = max(1e-9, last_end - window_start)
    throughput = round(len(in_window) / window, 2) if in_window else 0.0
    api_cpu = facts["api_cpu_seconds"]
    return {
        "users": users,
        "requests": len(records),
        "accepted": len(accepted),
        "failures": dict(failures),
        "accepted_per_second": throughput,
        "window_seconds": round(window, 2),
        "latency_ms": summarize([r["latency_ms"] for r in records], 1),
        "api_cpu_seconds": api_cpu,
        "api_cpu_ms_per_accepted_job": (
            round(api_cpu * 1000 / len(accepted), 1) if api_cpu and accepted else None
        ),
        **facts,
    }


def check_jobs(
    platform: RunningPlatform, all_records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Compare accepted job ids with the job rows in the database."""
    accepted_ids = [
        r["job_id"] for r in all_records if r["status_code"] == 202 and r["job_id"]
    ]
    rows = platform.job_statuses()
    accepted_set = set(accepted_ids)
    return {
        "accepted_responses": len(accepted_ids),
        "distinct_accepted_job_ids": len(accepted_set),
        "duplicate_job_ids": len(accepted_ids) - len(accepted_set),
        "job_rows": len(rows),
        "lost_jobs": len(accepted_set - rows.keys()),
        "rows_without_accepted_response": len(rows.keys() - accepted_set),
        "job_statuses": dict(Counter(rows.values())),
    }


def results_table(runs: list[dict[str, Any]]) -> str:
    headers = [
        "users",
        "requests",
        "accepted",
        "failures",
        "accepted jobs/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "API CPU ms per job",
    ]
    rows = [
        [
            run["users"],
            run["requests"],
            run["accepted"],
            sum(run["failures"].values()),
            run["accepted_per_second"],
            run["latency_ms"]["p50"],
            run["latency_ms"]["p90"],
            run["latency_ms"]["p99"],
            run["api_cpu_ms_per_accepted_job"],
        ]
        for run in runs
    ]
    return markdown_table(headers, rows)


def plot(
    runs: list[dict[str, Any]], latencies: dict[str, list[float]], folder: Path
) -> list[str]:
    throughput_path = folder / "throughput.png"
    bar_chart(
        throughput_path,
        [f"{run['users']} users" for run in runs],
        {"accepted jobs/s": [run["accepted_per_second"] for run in runs]},
        ylabel="accepted jobs per second",
        title="POST /api/process throughput",
    )
    latency_path = folder / "latency_cdf.png"
    cdf_chart(latency_path, latencies, xlabel="POST latency, ms", title="POST latency")
    return [throughput_path.name, latency_path.name]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse_arguments(argv)
    configure_bench_logging()
    folder = output_dir(arguments, SCENARIO)
    smoke = arguments.smoke
    user_counts = [
        int(part) for part in (arguments.users or ("2" if smoke else "2,8")).split(",")
    ]
    duration = arguments.duration or (4.0 if smoke else 40.0)
    max_requests = arguments.max_requests or (20 if smoke else 5000)
    warmup = 0.0 if smoke else WARMUP_SECONDS

    results: dict[str, Any] = run_header(SCENARIO, arguments)
    results["command"] = command_line(SCENARIO, argv)
    image = small_jpeg()
    image_path = folder / "small.jpg"
    image_path.write_bytes(image.data)
    results["image"] = image.describe()
    results["with_worker"] = arguments.with_worker
    results["duration_seconds"] = duration
    results["max_requests"] = max_requests

    runs: list[dict[str, Any]] = []
    latencies: dict[str, list[float]] = {}
    all_records: list[dict[str, Any]] = []
    options = PlatformOptions(standard_worker=arguments.with_worker)
    with running_platform(folder, options) as platform:
        results["broker_isolated_vhost"] = platform.broker_isolated
        for users in user_counts:
            records, facts = run_locust(
                platform, folder, image_path, users, duration, max_requests
            )
            run = summarize_run(users, records, facts, warmup)
            print(
                f"{users} users: {run['accepted_per_second']} accepted/s, "
                f"p50 {run['latency_ms']['p50']} ms, p99 {run['latency_ms']['p99']} ms",
                flush=True,
            )
            runs.append(run)
            latencies[f"{users} users"] = [r["latency_ms"] for r in records]
            all_records.extend(records)
        # Give the API a moment to finish requests that Locust abandoned.
        time.sleep(1.0)
        results["integrity"] = check_jobs(platform, all_records)

    results["runs"] = runs
    results["plots"] = plot(runs, latencies, folder)
    results.update(run_footer())
    write_json(folder / "results.json", results)
    integrity = results["integrity"]
    write_markdown(
        folder / "results.md",
        "API ingest",
        [
            machine_summary(results),
            f"Command: `{results['command']}`. Locust (FastHttpUser, closed loop, no "
            f"wait) posts {image.name} ({image.describe()['size_bytes']} bytes) with "
            f'operations ["webp"] for {duration:.0f} s per run; worker running: '
            f"{'yes' if arguments.with_worker else 'no'}. Locust, the API, "
            "PostgreSQL, RabbitMQ and moto share the same 2 cores.",
            results_table(runs),
            f"Job rows: {integrity['job_rows']} for {integrity['accepted_responses']} "
            f"accepted responses; lost {integrity['lost_jobs']}, duplicate ids "
            f"{integrity['duplicate_job_ids']}, rows without an accepted response "
            f"{integrity['rows_without_accepted_response']}.",
        ],
    )
    print(f"results in {folder}", flush=True)
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
