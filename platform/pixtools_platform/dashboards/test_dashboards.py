"""The committed dashboards match the generator; the pods expose what Alloy scrapes.

Which metric names the queries use is checked against the processes' own
registries by tests/test_dashboard_queries.py, which can import the services.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixtools_platform.dashboards import generate
from pixtools_platform.testing import kube
from pixtools_platform.testing.harness import StackRun


def find_dashboard_dir() -> Path:
    """The folder of the JSON files: beside the module in a checkout, or at the
    source-root-relative path where a Pants sandbox places resources."""
    candidates = [
        Path(generate.__file__).resolve().parent,
        Path.cwd() / "pixtools_platform" / "dashboards",
    ]
    for candidate in candidates:
        if (candidate / "api.json").is_file():
            return candidate
    raise AssertionError(f"no dashboard JSON files in {candidates}")


DASHBOARD_DIR = find_dashboard_dir()


@pytest.mark.parametrize("dashboard", generate.DASHBOARDS, ids=lambda d: d.uid)
def test_committed_file_matches_generator(dashboard: generate.Dashboard) -> None:
    path = DASHBOARD_DIR / generate.file_name(dashboard)
    assert path.read_text("utf-8") == generate.render(dashboard), (
        f"{path.name} is stale: run python -m pixtools_platform.dashboards.generate"
    )


def test_four_dashboards_with_unique_uids() -> None:
    files = sorted(path.name for path in DASHBOARD_DIR.glob("*.json"))
    assert files == ["api.json", "pipeline.json", "queues.json", "workers.json"]
    uids = [dashboard.uid for dashboard in generate.DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("dashboard", generate.DASHBOARDS, ids=lambda d: d.uid)
def test_panels_are_well_formed(dashboard: generate.Dashboard) -> None:
    model = json.loads(generate.render(dashboard))
    cells: set[tuple[int, int]] = set()
    for panel in model["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        position = panel["gridPos"]
        cell = (position["x"], position["y"])
        assert cell not in cells, panel["title"]
        cells.add(cell)
        for target in panel["targets"]:
            assert 'environment=~"$environment"' in target["expr"], target["expr"]
            assert target["legendFormat"], panel["title"]
    ids = [panel["id"] for panel in model["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    variables = [variable["name"] for variable in model["templating"]["list"]]
    assert variables == ["datasource", "environment"]


def _env(body: dict) -> dict[str, str | None]:
    container = kube.pod_spec(body)["containers"][0]
    return {entry["name"]: entry.get("value") for entry in container.get("env", [])}


def test_workers_serve_metrics_on_scraped_port(stack_run: StackRun) -> None:
    for name in ("worker-standard", "worker-ml"):
        deployment = kube.find(stack_run, "Deployment", name)
        env = _env(deployment)
        ports = {
            port["name"]: port["containerPort"]
            for port in kube.pod_spec(deployment)["containers"][0]["ports"]
        }
        # The pod's own address must be reachable by Alloy.
        assert env["METRICS_HOST"] == "0.0.0.0"
        assert env["WORKER_METRICS_PORT"] == str(ports["metrics"])
        assert env["LOG_JSON"] == "true"


def test_api_metrics_open_inside_cluster(stack_run: StackRun) -> None:
    env = _env(kube.find(stack_run, "Deployment", "api"))
    assert env["METRICS_PUBLIC"] == "true"
    assert env["LOG_JSON"] == "true"
    assert env["OTEL_TRACES_EXPORTER"] == "none"
