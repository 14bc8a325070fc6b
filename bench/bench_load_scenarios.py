"""Load scenarios: steady baseline, spike, retry storm and a heavy/light mix.

One platform (fresh PostgreSQL database, RabbitMQ vhost, Redis, moto S3, the
API, the standard worker and, for the starvation mix, the ML worker) serves all
scenarios. They run one after the other, and each waits until its jobs are final.
Requests arrive open-loop (Poisson, fixed seed):

- steady: the baseline rate of light jobs (one webp operation on a 640x480 JPEG).
- spike: baseline, then several times the baseline, then baseline again.
- retry-storm: clients give up after a short timeout and retry with the same
  Idempotency-Key (the last attempt waits long), so the API gets many
  duplicate requests.
- starvation: a batch of heavy denoise jobs fills the ML queue, then light jobs
  arrive at the baseline rate; their latency is compared with steady.

Each scenario reports HTTP failures, POST and completion latencies and completed
jobs, and checks in the database that no accepted job was lost or duplicated
and, for the retry storm, that each Idempotency-Key has exactly one job.

    python bench/bench_load_scenarios.py [--smoke] [--scenarios steady,spike,...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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
from benchkit.client import submit_job
from benchkit.images import BenchImage, photo_jpeg, small_jpeg
from benchkit.integrity import (
    JobRow,
    RequestOutcome,
    evaluate,
    fetch_jobs_per_key,
    wait_until_final,
)
from benchkit.loadgen import Arrival, Phase, arrival_schedule, run_open_loop
from benchkit.machine import machine_summary
from benchkit.platform import PlatformOptions, RunningPlatform, running_platform
from benchkit.report import (
    bar_chart,
    markdown_table,
    scatter_over_time,
    write_json,
    write_markdown,
)
from benchkit.stats import summarize

SCENARIO = "bench_load_scenarios"
DESCRIPTION = "Load scenarios: steady, spike, retry storm, heavy/light starvation mix."
SCENARIO_NAMES = ("steady", "spike", "retry-storm", "starvation")
LIGHT_OPERATIONS = ["webp"]
HEAVY_OPERATIONS = ["denoise"]
LONG_TIMEOUT_SECONDS = 30.0
# Repeats of a request whose last attempt got 409 because an earlier attempt with
# the same Idempotency-Key was still in flight.
IN_FLIGHT_REPEATS = 5
# Light jobs sent and finished before the first scenario; they are not counted.
WARMUP_JOBS = 6


@dataclass(frozen=True)
class LoadConfig:
    """Rates, durations and client behaviour of every scenario."""

    baseline_rate: float
    steady_seconds: float
    spike_factor: float
    spike_lead_seconds: float
    spike_seconds: float
    spike_tail_seconds: float
    storm_rate: float
    storm_seconds: float
    storm_client_timeout: float
    storm_max_attempts: int
    storm_backoff_seconds: float
    heavy_jobs: int
    heavy_size: tuple[int, int]
    starvation_seconds: float
    drain_timeout: float


FULL_CONFIG = LoadConfig(
    baseline_rate=3.0,
    steady_seconds=30.0,
    spike_factor=5.0,
    spike_lead_seconds=10.0,
    spike_seconds=10.0,
    spike_tail_seconds=20.0,
    storm_rate=3.0,
    storm_seconds=20.0,
    storm_client_timeout=0.03,
    storm_max_attempts=5,
    storm_backoff_seconds=0.05,
    heavy_jobs=8,
    heavy_size=(2048, 1536),
    starvation_seconds=30.0,
    drain_timeout=600.0,
)
SMOKE_CONFIG = LoadConfig(
    baseline_rate=3.0,
    steady_seconds=2.0,
    spike_factor=3.0,
    spike_lead_seconds=1.0,
    spike_seconds=1.0,
    spike_tail_seconds=1.0,
    storm_rate=4.0,
    storm_seconds=2.0,
    storm_client_timeout=0.02,
    storm_max_attempts=3,
    storm_backoff_seconds=0.02,
    heavy_jobs=1,
    heavy_size=(128, 96),
    starvation_seconds=2.0,
    drain_timeout=120.0,
)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser(SCENARIO, DESCRIPTION)
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIO_NAMES),
        help=f"comma-separated subset of {', '.join(SCENARIO_NAMES)}",
    )
    parser.add_argument(
        "--baseline-rate",
        type=float,
        default=None,
        help="light jobs per second of the baseline (default 3)",
    )
    parser.add_argument("--seed", type=int, default=7, help="arrival schedule seed")
    arguments = parser.parse_args(argv)
    names = [name.strip() for name in arguments.scenarios.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SCENARIO_NAMES))
    if unknown:
        parser.error(
            f"unknown scenarios {unknown}; expected {', '.join(SCENARIO_NAMES)}"
        )
    arguments.scenario_list = names
    return arguments


async def send_request(
    client: httpx.AsyncClient,
    outcome: RequestOutcome,
    image: BenchImage,
    operations: list[str],
    *,
    max_attempts: int = 1,
    early_timeout: float | None = None,
    backoff_seconds: float = 0.0,
) -> RequestOutcome:
    """Send one logical request; retry timed-out or failed attempts if allowed.

    Every attempt but the last uses `early_timeout`; the last waits
    LONG_TIMEOUT_SECONDS so the request's final outcome is known. When the last
    attempt gets 409 (an earlier attempt with the key is still in flight), the
    request is repeated after the response's Retry-After, up to
    IN_FLIGHT_REPEATS times. Any other 4xx response except 429 ends the request,
    because repeating it cannot help.
    """
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1
        timeout = (
            LONG_TIMEOUT_SECONDS if last or early_timeout is None else early_timeout
        )
        submission = await submit_job(
            client,
            image,
            operations,
            idempotency_key=outcome.idempotency_key,
            timeout=timeout,
            filename=outcome.filename,
        )
        outcome.attempts.append(submission)
        if submission.accepted:
            break
        code = submission.status_code
        if code is not None and 400 <= code < 500 and code not in (409, 429):
            break
        if not last:
            await asyncio.sleep(backoff_seconds * (2**attempt))

    for _ in range(IN_FLIGHT_REPEATS):
        previous = outcome.attempts[-1]
        if previous.accepted or previous.status_code != 409:
            break
        await asyncio.sleep(previous.retry_after or 1.0)
        outcome.attempts.append(
            await submit_job(
                client,
                image,
                operations,
                idempotency_key=outcome.idempotency_key,
                timeout=LONG_TIMEOUT_SECONDS,
                filename=outcome.filename,
            )
        )
    return outcome


def light_outcome(
    scenario: str, arrival: Arrival, key: str | None = None
) -> RequestOutcome:
    return RequestOutcome(
        scenario=scenario,
        phase=arrival.phase,
        kind="light",
        filename=f"{scenario}-{arrival.index:05d}.jpg",
        offset=arrival.offset,
        idempotency_key=key,
    )


async def drive(
    base_url: str,
    scenario: str,
    phases: list[Phase],
    image: BenchImage,
    seed: int,
    *,
    retry: LoadConfig | None = None,
) -> list[RequestOutcome]:
    """Run the open-loop schedule of `phases` with light jobs."""
    arrivals = arrival_schedule(phases, seed)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=LONG_TIMEOUT_SECONDS, limits=limits
    ) as client:

        async def fire(arrival: Arrival) -> RequestOutcome:
            if retry is None:
                return await send_request(
                    client, light_outcome(scenario, arrival), image, LIGHT_OPERATIONS
                )
            outcome = light_outcome(scenario, arrival, key=f"bench-{uuid.uuid4().hex}")
            return await send_request(
                client,
                outcome,
                image,
                LIGHT_OPERATIONS,
                max_attempts=retry.storm_max_attempts,
                early_timeout=retry.storm_client_timeout,
                backoff_seconds=retry.storm_backoff_seconds,
            )

        return await run_open_loop(arrivals, fire)


async def drive_starvation(
    base_url: str,
    light: BenchImage,
    heavy: BenchImage,
    config: LoadConfig,
    seed: int,
) -> list[RequestOutcome]:
    """Submit the heavy batch, then run light jobs at the baseline rate."""
    async with httpx.AsyncClient(
        base_url=base_url, timeout=LONG_TIMEOUT_SECONDS
    ) as client:
        heavy_outcomes = []
        for index in range(config.heavy_jobs):
            outcome = RequestOutcome(
                scenario="starvation",
                phase="heavy",
                kind="heavy",
                filename=f"starvation-heavy-{index:05d}.jpg",
                offset=0.0,
            )
            heavy_outcomes.append(
                await send_request(client, outcome, heavy, HEAVY_OPERATIONS)
            )
    phases = [Phase("light", config.starvation_seconds, config.baseline_rate)]
    light_outcomes = await drive(base_url, "starvation", phases, light, seed)
    return heavy_outcomes + light_outcomes


def latency_summaries(
    outcomes: list[RequestOutcome], rows: list[JobRow]
) -> dict[str, Any]:
    """POST and completion latency (job finished_at - first attempt) per phase."""
    finished = {row.job_id: row.finished_at for row in rows}
    groups: dict[str, list[RequestOutcome]] = {}
    for outcome in outcomes:
        label = outcome.phase if outcome.kind == "light" else "heavy"
        groups.setdefault(label, []).append(outcome)

    result: dict[str, Any] = {}
    for label, group in groups.items():
        post = [o.accepted_attempt.latency_ms for o in group if o.accepted_attempt]
        first = [o.attempts[0].latency_ms for o in group if o.attempts]
        completion = []
        for outcome in group:
            attempt = outcome.accepted_attempt
            if attempt is None or attempt.job_id is None:
                continue
            end = finished.get(attempt.job_id)
            if end is not None:
                completion.append((end - outcome.first_sent_at) * 1000)
        result[label] = {
            "requests": len(group),
            "post_accepted_ms": summarize(post, 1),
            "post_first_attempt_ms": summarize(first, 1),
            "completion_ms": summarize(completion, 1),
        }
    return result


def completion_points(
    outcomes: list[RequestOutcome], rows: list[JobRow]
) -> dict[str, tuple[list[float], list[float]]]:
    finished = {row.job_id: row.finished_at for row in rows}
    series: dict[str, tuple[list[float], list[float]]] = {}
    for outcome in outcomes:
        attempt = outcome.accepted_attempt
        if attempt is None or attempt.job_id is None:
            continue
        end = finished.get(attempt.job_id)
        if end is None:
            continue
        times, values = series.setdefault(outcome.kind, ([], []))
        times.append(outcome.offset)
        values.append((end - outcome.first_sent_at) * 1000)
    return series


def warm_up(
    platform: RunningPlatform, light: BenchImage, config: LoadConfig
) -> dict[str, Any]:
    """Send a few light jobs one by one and wait for them, before any scenario.

    The first jobs after a start pay for imports, codec setup and new database,
    broker and S3 connections in every worker process, which would otherwise
    count against whichever scenario runs first.
    """
    outcomes: list[RequestOutcome] = []

    async def send_all() -> None:
        async with httpx.AsyncClient(
            base_url=platform.base_url, timeout=LONG_TIMEOUT_SECONDS
        ) as client:
            for index in range(WARMUP_JOBS):
                outcome = RequestOutcome(
                    scenario="warmup",
                    phase="warmup",
                    kind="light",
                    filename=f"warmup-{index:05d}.jpg",
                    offset=0.0,
                )
                outcomes.append(
                    await send_request(client, outcome, light, LIGHT_OPERATIONS)
                )

    asyncio.run(send_all())
    rows, waited = wait_until_final(
        platform.psycopg_url(), "warmup-", config.drain_timeout
    )
    return {"integrity": evaluate(outcomes, rows), "wait_seconds": round(waited, 1)}


def run_scenario(
    name: str,
    platform: RunningPlatform,
    config: LoadConfig,
    light: BenchImage,
    heavy: BenchImage | None,
    seed: int,
    folder: Path,
) -> dict[str, Any]:
    """Run one scenario, wait for its jobs to finish, then evaluate it."""
    base = config.baseline_rate
    if name == "steady":
        phases = [Phase("steady", config.steady_seconds, base)]
        outcomes = asyncio.run(drive(platform.base_url, name, phases, light, seed))
    elif name == "spike":
        phases = [
            Phase("before", config.spike_lead_seconds, base),
            Phase("spike", config.spike_seconds, base * config.spike_factor),
            Phase("after", config.spike_tail_seconds, base),
        ]
        outcomes = asyncio.run(drive(platform.base_url, name, phases, light, seed))
    elif name == "retry-storm":
        phases = [Phase("storm", config.storm_seconds, config.storm_rate)]
        outcomes = asyncio.run(
            drive(platform.base_url, name, phases, light, seed, retry=config)
        )
    else:
        assert heavy is not None
        phases = [Phase("light", config.starvation_seconds, base)]
        outcomes = asyncio.run(
            drive_starvation(platform.base_url, light, heavy, config, seed)
        )

    prefix = f"{name}-"
    rows, waited = wait_until_final(
        platform.psycopg_url(), prefix, config.drain_timeout
    )
    jobs_per_key = (
        fetch_jobs_per_key(platform.psycopg_url(), prefix)
        if name == "retry-storm"
        else None
    )
    result: dict[str, Any] = {
        "scenario": name,
        "phases": [phase.__dict__ for phase in phases],
        "integrity": evaluate(outcomes, rows, jobs_per_key),
        "latency": latency_summaries(outcomes, rows),
        "drain_wait_seconds": round(waited, 1),
    }
    if name == "starvation":
        result["heavy_overlap"] = heavy_overlap(outcomes, rows)

    plot_path = folder / f"{name}_completion.png"
    scatter_over_time(
        plot_path,
        completion_points(outcomes, rows),
        ylabel="completion latency, ms (log)",
        title=f"{name}: job completion latency by arrival time",
        log_scale=True,
    )
    result["plot"] = plot_path.name
    return result


def heavy_overlap(outcomes: list[RequestOutcome], rows: list[JobRow]) -> dict[str, Any]:
    """Measure how long the heavy jobs kept the ML queue busy after light jobs ended."""
    by_id = {row.job_id: row for row in rows}

    def finished_times(kind: str) -> list[float]:
        times = []
        for outcome in outcomes:
            attempt = outcome.accepted_attempt
            if outcome.kind == kind and attempt and attempt.job_id in by_id:
                end = by_id[attempt.job_id].finished_at
                if end is not None:
                    times.append(end)
        return times

    heavy_done = finished_times("heavy")
    light_done = finished_times("light")
    last_light = max(light_done) if light_done else None
    return {
        "heavy_jobs_finished_after_last_light_job": (
            sum(1 for t in heavy_done if last_light is not None and t > last_light)
        ),
        "heavy_jobs": len(heavy_done),
        "last_heavy_minus_last_light_seconds": (
            round(max(heavy_done) - last_light, 1)
            if heavy_done and last_light is not None
            else None
        ),
    }


def scenario_table(results: list[dict[str, Any]]) -> str:
    headers = [
        "scenario",
        "phase",
        "requests",
        "POST p50 ms",
        "POST p99 ms",
        "completion p50 ms",
        "completion p90 ms",
        "completion p99 ms",
    ]
    rows = []
    for result in results:
        for phase, stats in result["latency"].items():
            rows.append(
                [
                    result["scenario"],
                    phase,
                    stats["requests"],
                    stats["post_accepted_ms"]["p50"],
                    stats["post_accepted_ms"]["p99"],
                    stats["completion_ms"]["p50"],
                    stats["completion_ms"]["p90"],
                    stats["completion_ms"]["p99"],
                ]
            )
    return markdown_table(headers, rows)


def integrity_table(results: list[dict[str, Any]]) -> str:
    headers = [
        "scenario",
        "requests",
        "attempts",
        "accepted",
        "HTTP failures",
        "client timeouts",
        "job rows",
        "completed",
        "lost",
        "duplicated",
        "replayed",
        "keys with >1 job",
        "check",
    ]
    rows = []
    for result in results:
        check = result["integrity"]
        rows.append(
            [
                result["scenario"],
                check["requests"],
                check["attempts"],
                check["accepted_requests"],
                check["http_failures"],
                check["client_timeouts_or_errors"],
                check["job_rows"],
                check["job_statuses"].get("COMPLETED", 0),
                check["lost_jobs"],
                check["duplicate_jobs"],
                check["replayed_responses"],
                check.get("keys_with_more_than_one_job", "-"),
                "ok" if check["ok"] else "FAILED",
            ]
        )
    return markdown_table(headers, rows)


def plot_light_latency(results: list[dict[str, Any]], folder: Path) -> str:
    labels, p50, p99 = [], [], []
    for result in results:
        for phase, stats in result["latency"].items():
            if phase == "heavy":
                continue
            labels.append(f"{result['scenario']}/{phase}")
            p50.append(stats["completion_ms"]["p50"])
            p99.append(stats["completion_ms"]["p99"])
    path = folder / "light_completion.png"
    bar_chart(
        path,
        labels,
        {"p50": p50, "p99": p99},
        ylabel="ms (log)",
        title="Light job completion latency by scenario and phase",
        log_scale=True,
    )
    return path.name


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse_arguments(argv)
    configure_bench_logging()
    folder = output_dir(arguments, SCENARIO)
    config = SMOKE_CONFIG if arguments.smoke else FULL_CONFIG
    if arguments.baseline_rate:
        config = LoadConfig(
            **{**config.__dict__, "baseline_rate": arguments.baseline_rate}
        )
    names: list[str] = arguments.scenario_list

    results: dict[str, Any] = run_header(SCENARIO, arguments)
    results["command"] = command_line(SCENARIO, argv)
    results["config"] = {**config.__dict__, "heavy_size": list(config.heavy_size)}
    light = small_jpeg()
    heavy = photo_jpeg("denoise-source", config.heavy_size, seed=5, quality=90)
    results["images"] = {"light": light.describe(), "heavy": heavy.describe()}

    options = PlatformOptions(standard_worker=True, ml_worker="starvation" in names)
    scenario_results = []
    with running_platform(folder, options) as platform:
        results["broker_isolated_vhost"] = platform.broker_isolated
        results["warmup"] = warm_up(platform, light, config)
        for index, name in enumerate(names):
            print(f"scenario {name} started", flush=True)
            platform.check_children()
            outcome = run_scenario(
                name, platform, config, light, heavy, arguments.seed + index, folder
            )
            check = outcome["integrity"]
            print(
                f"scenario {name}: {check['requests']} requests, "
                f"{check['accepted_requests']} accepted, {check['job_rows']} rows, "
                f"lost {check['lost_jobs']}, duplicated {check['duplicate_jobs']}",
                flush=True,
            )
            scenario_results.append(outcome)

    results["scenarios"] = scenario_results
    results["all_ok"] = all(r["integrity"]["ok"] for r in scenario_results)
    results["plots"] = [r["plot"] for r in scenario_results] + [
        plot_light_latency(scenario_results, folder)
    ]
    results.update(run_footer())
    write_json(folder / "results.json", results)

    notes = []
    for result in scenario_results:
        if "heavy_overlap" in result:
            overlap = result["heavy_overlap"]
            later = overlap["heavy_jobs_finished_after_last_light_job"]
            gap = overlap["last_heavy_minus_last_light_seconds"]
            notes.append(
                f"Starvation mix: {later} of {overlap['heavy_jobs']} denoise jobs "
                "finished after the last light job; the last denoise job finished "
                f"{gap} s after it."
            )
    timeout_ms = config.storm_client_timeout * 1000
    write_markdown(
        folder / "results.md",
        "Load scenarios",
        [
            machine_summary(results),
            f"Command: `{results['command']}`. Light job: {light.name} "
            f"({light.describe()['size_bytes']} bytes) -> webp; heavy job: denoise of "
            f"a {config.heavy_size[0]}x{config.heavy_size[1]} JPEG. Baseline "
            f"{config.baseline_rate} jobs/s; spike x{config.spike_factor:g}; retry "
            f"storm {config.storm_rate} keys/s with a {timeout_ms:.0f} ms client "
            f"timeout and up to {config.storm_max_attempts} attempts. {WARMUP_JOBS} "
            "light warm-up jobs ran first and are not counted.",
            integrity_table(scenario_results),
            scenario_table(scenario_results),
            "\n".join(notes),
        ],
    )
    print(f"results in {folder}", flush=True)
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
