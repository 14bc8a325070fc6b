"""Smoke run of the whole benchmark suite: tiny counts, real servers, no timings.

One ``bench/run_all.py --smoke`` run, shared by the module, runs every scenario
script as its own process, as a full run does. Each test checks what one scenario
wrote: the expected keys, equal counts and no lost or duplicated job, and the
combined report and summary. test_denoise_api_smoke runs bench_denoise_api.py on
its own, because run_all.py does not include it, and test_tile_threads_smoke
runs bench_tile_threads.py the same way. Timings are never asserted. The
platform scenarios need PostgreSQL, RabbitMQ and Redis on 127.0.0.1 and are
skipped without them.
thumbor and pillow-avif-plugin are measured only when
PIXTOOLS_BENCH_THUMBOR_PYTHON and PIXTOOLS_BENCH_AVIF_PLUGIN_PYTHON name the Python
of their virtual environments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import bench_denoise_api
import bench_job_overhead
import bench_load_scenarios
import bench_operations
import bench_peer_thumbor
import bench_tile_threads
import pytest
import run_all
from benchkit.platform import child_environment, port_open

SERVERS_UP = all(port_open(port) for port in (5432, 5672, 6379))
PLATFORM_STEPS = ["job_overhead", "ingest", "ingest_with_worker", "load_scenarios"]

needs_servers = pytest.mark.skipif(
    not SERVERS_UP,
    reason="PostgreSQL, RabbitMQ or Redis is not reachable on 127.0.0.1",
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the whole suite once with --smoke; return its output folder."""
    folder = tmp_path_factory.mktemp("bench-run-all")
    arguments = ["--smoke", "--output-dir", str(folder)]
    if not SERVERS_UP:
        arguments += ["--skip", *PLATFORM_STEPS]
    run_all.main(arguments)
    return folder


def step_folder(smoke_run: Path, name: str) -> Path:
    summary = json.loads((smoke_run / "summary.json").read_text())
    step = next(step for step in summary["steps"] if step["name"] == name)
    log = smoke_run / name / "run.log"
    assert step["returncode"] == 0, log.read_text()[-4000:]
    return smoke_run / name


def read_results(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "results.json").read_text())
    assert (folder / "results.md").read_text().startswith("# ")
    for plot in data["plots"]:
        assert (folder / plot).stat().st_size > 0, plot
    return data


def run_smoke_script(
    script: str, options: list[str], output_dir: Path
) -> subprocess.CompletedProcess[str]:
    """Run a bench script with --smoke, ``options`` and --output-dir, check exit 0."""
    command = [sys.executable, script, "--smoke", *options]
    command += ["--output-dir", str(output_dir)]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=child_environment({}),
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, (
        completed.stdout[-4000:] + completed.stderr[-4000:]
    )
    return completed


def test_operations_smoke(smoke_run: Path) -> None:
    data = read_results(step_folder(smoke_run, "operations"))

    assert data["smoke"] is True
    assert data["machine"]["usable_cores"] >= 1
    rows = data["operations"]
    assert len(rows) == 3 * len(bench_operations.OPERATIONS)
    for row in rows:
        assert row["repeats"] == 1
        assert len(row["worker_wall_ms"]) == row["repeats"]
        assert row["worker_output_bytes"] > 0
        assert row["ratio_wall"] > 0
        if row["operation"] != "metadata":
            assert row["worker_output_size"] == row["bare_output_size"], row["image"]

    avif = data["avif_encoders"]
    native = avif["encoders"][0]
    assert native["label"] == "pillow-native"
    assert "error" not in native
    assert native["metadata"]["gps_after_empty_argument"] is False
    assert avif["pixtools_output_metadata"] == {"exif": False, "gps": False}
    if os.environ.get(bench_operations.AVIF_PLUGIN_PYTHON_ENV):
        assert avif["plugin_skipped"] is None
        assert "error" not in avif["encoders"][1]
    else:
        assert avif["plugin_skipped"]


def test_peer_thumbor_smoke(smoke_run: Path) -> None:
    data = read_results(step_folder(smoke_run, "peer_thumbor"))

    assert len(data["rows"]) == 2
    for row in data["rows"]:
        systems = row["systems"]
        worker = systems["pixtools-worker-path"]
        bare = systems["bare-pillow"]
        assert worker["images"] == bare["images"] == 2
        assert worker["output_size"] == bare["output_size"]
        if "thumbor" in systems:
            assert systems["thumbor"]["images"] == 2
            assert systems["thumbor"]["output_size"] == worker["output_size"]
    if os.environ.get(bench_peer_thumbor.THUMBOR_PYTHON_ENV):
        assert data["thumbor"]["skipped"] is None
    else:
        assert data["thumbor"]["skipped"]


@needs_servers
def test_job_overhead_smoke(smoke_run: Path) -> None:
    data = read_results(step_folder(smoke_run, "job_overhead"))

    assert data["problems"] == []
    assert data["jobs_measured"] == data["jobs_expected"] == 3 * 2
    assert data["job_rows"] == data["jobs_submitted"]
    for job in data["jobs"]:
        assert job["status"] == "COMPLETED"
        assert job["busy_ms"] > 0
        assert job["overhead_ms"] is not None
    for kind in bench_job_overhead.JOB_KINDS:
        assert data["summary"][kind]["overhead_ms"]["count"] == 3


@needs_servers
@pytest.mark.parametrize("step", ["ingest", "ingest_with_worker"])
def test_ingest_smoke(smoke_run: Path, step: str) -> None:
    data = read_results(step_folder(smoke_run, step))

    assert data["with_worker"] is (step == "ingest_with_worker")
    run = data["runs"][0]
    assert run["requests"] >= 1
    assert run["failures"] == {}
    integrity = data["integrity"]
    assert integrity["accepted_responses"] == run["accepted"]
    assert integrity["job_rows"] == integrity["accepted_responses"]
    assert integrity["lost_jobs"] == 0
    assert integrity["duplicate_job_ids"] == 0
    assert integrity["rows_without_accepted_response"] == 0


@needs_servers
def test_load_scenarios_smoke(smoke_run: Path) -> None:
    data = read_results(step_folder(smoke_run, "load_scenarios"))

    assert data["all_ok"] is True
    scenarios = {result["scenario"]: result for result in data["scenarios"]}
    assert list(scenarios) == list(bench_load_scenarios.SCENARIO_NAMES)
    for name, result in scenarios.items():
        check = result["integrity"]
        assert check["requests"] > 0, name
        assert check["accepted_requests"] == check["requests"], name
        assert check["lost_jobs"] == 0, name
        assert check["duplicate_jobs"] == 0, name
        assert check["unfinished_jobs"] == 0, name
        assert check["job_statuses"] == {"COMPLETED": check["requests"]}, name

    storm = scenarios["retry-storm"]["integrity"]
    assert storm["idempotency_keys"] == storm["requests"]
    assert storm["keys_with_more_than_one_job"] == 0
    assert storm["jobs_without_key_record"] == 0
    assert storm["inconsistent_replays"] == 0
    assert scenarios["starvation"]["heavy_overlap"]["heavy_jobs"] == 1


@pytest.mark.parametrize("step", ["denoise_1_thread", "denoise"])
def test_denoise_smoke(smoke_run: Path, step: str) -> None:
    folder = step_folder(smoke_run, step)
    data = json.loads((folder / "denoise.json").read_text())

    assert data["smoke"] is True
    assert [record["megapixels"] for record in data["results"]] == [0.05, 0.1]
    for record in data["results"]:
        assert record["seconds_per_megapixel"] > 0
        assert record["peak_rss_mib"] > 0
        assert record["precision"] in {"bf16", "fp32", "int8"}
        assert record["views"] in {1, 2, 4, 8}
        # Smoke images fit one tile, so tiled and whole passes are identical.
        assert record["tiled_vs_whole_max_difference_levels"] == 0
        assert record["tiled_psnr_db"] > record["noisy_psnr_db"] + 3.0
    if step == "denoise_1_thread":
        assert {record["threads"] for record in data["results"]} == {1}


def test_tile_threads_smoke(tmp_path: Path) -> None:
    arguments = ["--threads", "2", "--busy-cores", "1"]
    run_smoke_script(bench_tile_threads.__file__, arguments, tmp_path)
    data = json.loads((tmp_path / "tile_threads.json").read_text())
    summary = (tmp_path / "tile_threads.md").read_text()

    assert data["rounds"] == 1
    assert data["threads"] == 2
    assert data["megapixels"] == bench_tile_threads.SMOKE_MEGAPIXELS
    assert data["busy_cores"] == 1
    assert "one view, 1 busy child process, 1 round." in summary
    for way in bench_tile_threads.WAYS:
        assert len(data["seconds_per_megapixel"][way]) == 1
        assert data["median_seconds_per_megapixel"][way] > 0
        assert f"| {way} |" in summary
    # The ways differ only in the order a convolution adds up its products.
    assert max(data["max_difference_levels"].values()) <= 1


@needs_servers
def test_denoise_api_smoke(tmp_path: Path) -> None:
    # fp32 needs no quantized engine, unlike int8. A fixed precision makes both
    # paths run the same network, so their PSNRs must agree.
    completed = run_smoke_script(
        bench_denoise_api.__file__, ["--precision", "fp32"], tmp_path
    )
    data = json.loads((tmp_path / "denoise_api.json").read_text())
    report = (tmp_path / "denoise_api.md").read_text()

    assert data["smoke"] is True
    assert data["problems"] == []
    assert data["comparison"]["worker_precision"] == "fp32"
    assert data["comparison"]["in_process_precision"] == "fp32"
    # The in-process denoiser runs the views that the worker picked.
    assert data["comparison"]["worker_views"] in {1, 2, 4, 8}
    assert data["comparison"]["in_process_views"] == data["comparison"]["worker_views"]
    image_count = len(bench_denoise_api.SMOKE_SIZES)
    assert data["images"]["count"] == image_count
    rows = data["per_sigma"]
    assert [row["sigma"] for row in rows] == list(bench_denoise_api.DEFAULT_SIGMAS)
    tolerance = bench_denoise_api.AGREEMENT_TOLERANCE_DB
    for row in rows:
        sigma = f"{row['sigma']:g}"
        row_start = f"| {sigma} | {image_count}/{image_count} |"
        assert row_start in report, sigma
        assert row_start in completed.stdout, sigma
        assert row["api_results"] == image_count, sigma
        assert row["api_psnr_db"] > row["noisy_psnr_db"], sigma
        assert row["in_process_psnr_db"] > row["in_process_noisy_psnr_db"], sigma
        assert abs(row["api_minus_in_process_db"]) <= tolerance, sigma
        assert row["within_tolerance"] is True, sigma
        # Both paths add the same seeded noise, so the uploads score the same.
        assert row["noisy_psnr_db"] == pytest.approx(
            row["in_process_noisy_psnr_db"], abs=1e-6
        ), sigma

    jobs = data["jobs"]
    assert len(jobs) == image_count * len(rows)
    for job in jobs:
        name = f"{job['image']} sigma {job['sigma']:g}"
        assert job["status"] == "COMPLETED", name
        assert job["output"]["format"] == "PNG", name
        assert job["output"]["mode"] == "RGB", name
        assert (job["output"]["width"], job["output"]["height"]) == (
            job["width"],
            job["height"],
        ), name
        assert job["upload_to_final_s"] >= job["upload_to_result_s"] > 0, name
    sizes = {row["size"]: row["jobs"] for row in data["timings_by_size"]}
    expected_sizes = {f"{w}x{h}": len(rows) for w, h in bench_denoise_api.SMOKE_SIZES}
    assert sizes == expected_sizes


def test_run_all_report(smoke_run: Path) -> None:
    summary = json.loads((smoke_run / "summary.json").read_text())
    report = (smoke_run / "report.md").read_text()

    names = [step["name"] for step in summary["steps"]]
    expected = [
        name for name in run_all.STEP_NAMES if SERVERS_UP or name not in PLATFORM_STEPS
    ]
    assert names == expected
    assert all(step["returncode"] == 0 for step in summary["steps"])
    headlines = summary["headlines"]
    assert len(headlines["conversion"]["per_core"]) == 2
    assert headlines["conversion"]["operation_cpu_ratios"]["conversions"] == 12
    assert len(headlines["denoise"]) == 4
    assert report.startswith("# PixTools benchmarks, one run")
    assert "## Headlines" in report
    assert "### Operation overhead" in report or "## Operation overhead" in report
    for name in names:
        assert f"| {name} | 0 |" in report
    if SERVERS_UP:
        assert [row["scenario"] for row in headlines["load_scenarios"]] == list(
            bench_load_scenarios.SCENARIO_NAMES
        )
        assert all(row["ok"] for row in headlines["load_scenarios"])
        assert {row["worker"] for row in headlines["ingest"]} == {False, True}
        assert len(headlines["job_overhead"]) == len(bench_job_overhead.JOB_KINDS)
