"""Every PromQL query of the Grafana dashboards reads series that really exist.

The names come from the metric objects the processes define (API, pipeline and
worker modules, the worker's pool collector and prometheus-client's process
collector), with the suffixes they are exported with (``_total``, ``_bucket``,
``_sum``, ``_count``). ``celery_*`` names are checked against the documented list
of celery-exporter's metrics beside the dashboards. Labels in matchers and in
``by (...)`` must be labels of the metric or labels Alloy adds to every series,
so no panel stays empty because of a typo.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from promql_names import metric_names, selectors

import pixtools_api.metrics_middleware as api_metrics
import pixtools_shared.metrics as shared_metrics
import pixtools_shared.observability.metrics as pipeline_metrics
from pixtools_shared.observability.worker_metrics import PoolCollector

# Labels Alloy gives every series: the relabel rules and remote_write's
# external_labels (platform/pixtools_platform/workloads/observability.py), plus
# the job and instance labels of every scrape.
TARGET_LABELS = frozenset(
    {"environment", "cluster", "pod", "service", "job", "instance"}
)
METRIC_MODULES: tuple[ModuleType, ...] = (pipeline_metrics, shared_metrics, api_metrics)
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^()]*)\)")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


@dataclass(frozen=True)
class ExportedSeries:
    name: str
    labels: frozenset[str]
    needs_task_events: bool = False


def dashboards_dir() -> Path:
    """The dashboards folder, found on sys.path (a source root or a Pants sandbox)."""
    for entry in sys.path:
        candidate = Path(entry or os.curdir) / "pixtools_platform" / "dashboards"
        if (candidate / "celery_exporter_metrics.txt").is_file():
            return candidate
    raise AssertionError("pixtools_platform/dashboards is not on sys.path")


def exported_series() -> dict[str, ExportedSeries]:
    """Sample names the PixTools processes export, with their label names."""
    exported: dict[str, ExportedSeries] = {}
    for module in METRIC_MODULES:
        for value in vars(module).values():
            if not isinstance(value, MetricWrapperBase):
                continue
            labels = frozenset(value._labelnames)
            for suffix in SUFFIXES[str(value._type)]:
                name = value._name + suffix
                extra = {"le"} if suffix == "_bucket" else set()
                exported[name] = ExportedSeries(name, labels | extra)
    # Families of collectors: process_* of the API's default registry (the
    # worker registers the same collector) and the worker's pool collector.
    families = [*REGISTRY.collect(), *PoolCollector(os.getpid()).collect()]
    for family in families:
        for suffix in SUFFIXES.get(family.type, ("",)):
            name = family.name + suffix
            exported.setdefault(name, ExportedSeries(name, frozenset()))
    return exported


def celery_exporter_series() -> dict[str, ExportedSeries]:
    listed: dict[str, ExportedSeries] = {}
    text = (dashboards_dir() / "celery_exporter_metrics.txt").read_text("utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _kind, labels, needs_events = line.split()
        listed[name] = ExportedSeries(
            name, frozenset(labels.split(",")), needs_events == "yes"
        )
    return listed


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expression) of every query."""
    queries: list[tuple[str, str, str]] = []
    for path in sorted(dashboards_dir().glob("*.json")):
        model: dict[str, Any] = json.loads(path.read_text("utf-8"))
        for panel in model["panels"]:
            for target in panel["targets"]:
                queries.append((path.name, panel["title"], target["expr"]))
        for variable in model["templating"]["list"]:
            query = variable.get("query")
            if isinstance(query, dict):
                match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query["query"])
                assert match, query
                queries.append((path.name, variable["name"], match.group(1)))
    return queries


QUERIES = dashboard_queries()
EXPORTED = exported_series()
CELERY = celery_exporter_series()


def test_four_dashboards_have_queries() -> None:
    files = {file for file, _title, _expr in QUERIES}
    assert files == {"api.json", "pipeline.json", "queues.json", "workers.json"}
    assert len(QUERIES) > 40


@pytest.mark.parametrize(("file", "title", "expr"), QUERIES)
def test_query_reads_exported_series(file: str, title: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, expr
    for name in names:
        if name.startswith("celery_"):
            assert name in CELERY, (
                f"{file} / {title}: {name} is not a celery-exporter metric"
            )
            assert not CELERY[name].needs_task_events, (
                f"{file} / {title}: {name} moves only with task events, "
                "which PixTools does not send"
            )
        else:
            assert name in EXPORTED, f"{file} / {title}: nothing exports {name}"


@pytest.mark.parametrize(("file", "title", "expr"), QUERIES)
def test_query_labels_exist(file: str, title: str, expr: str) -> None:
    known = {**EXPORTED, **CELERY}
    used_labels: set[str] = set()
    for selector in selectors(expr):
        series = known[selector.name]
        missing = selector.labels - series.labels - TARGET_LABELS
        assert not missing, f"{file} / {title}: {selector.name} has no label {missing}"
        used_labels |= series.labels
    for group in GROUPING.findall(expr):
        grouped = {label.strip() for label in group.split(",") if label.strip()}
        unknown = grouped - used_labels - TARGET_LABELS
        assert not unknown, f"{file} / {title}: no series has label {unknown}"


def test_every_pixtools_metric_has_a_panel() -> None:
    used = set().union(*(metric_names(expr) for _file, _title, expr in QUERIES))
    defined = {
        value._name
        for module in METRIC_MODULES
        for value in vars(module).values()
        if isinstance(value, MetricWrapperBase)
    }
    missing = {
        name for name in defined if not any(series.startswith(name) for series in used)
    }
    assert not missing
