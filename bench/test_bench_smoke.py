"""Smoke runs of every benchmark script: tiny counts, real servers, no timings.

Each test calls a script's main() with --smoke into tmp_path and checks the
results it wrote: the expected keys, equal counts and no lost or duplicated job.
Timings are never asserted. The platform scenarios need PostgreSQL, RabbitMQ and
Redis on 127.0.0.1 and are skipped without them. thumbor and pillow-avif-plugin
are measured only when PIXTOOLS_BENCH_THUMBOR_PYTHON and
PIXTOOLS_BENCH_AVIF_PLUGIN_PYTHON name the Python of their virtual environments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import bench_ingest
import bench_job_overhead
import bench_load_scenarios
import bench_operations
import bench_peer_thumbor
import pytest
from benchkit.platform import port_open

needs_servers = pytest.mark.skipif(
    not all(port_open(port) for port in (5432, 5672, 6379)),
    reason="PostgreSQL, RabbitMQ or Redis is not reachable on 127.0.0.1",
)


def read_results(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "results.json").read_text())
    assert (folder / "results.md").read_text().startswith("# ")
    for plot in data["plots"]:
        assert (folder / plot).stat().st_size > 0, plot
    return data


def test_operations_smoke(tmp_path: Path) -> None:
    bench_operations.main(["--smoke", "--output-dir", str(tmp_path)])
    data = read_results(tmp_path)

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


def test_peer_thumbor_smoke(tmp_path: Path) -> None:
    bench_peer_thumbor.main(["--smoke", "--output-dir", str(tmp_path)])
    data = read_results(tmp_path)

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
def test_job_overhead_smoke(tmp_path: Path) -> None:
    bench_job_overhead.main(["--smoke", "--output-dir", str(tmp_path)])
    data = read_results(tmp_path)

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
def test_ingest_smoke(tmp_path: Path) -> None:
    bench_ingest.main(["--smoke", "--output-dir", str(tmp_path)])
    data = read_results(tmp_path)

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
def test_load_scenarios_smoke(tmp_path: Path) -> None:
    bench_load_scenarios.main(["--smoke", "--output-dir", str(tmp_path)])
    data = read_results(tmp_path)

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
