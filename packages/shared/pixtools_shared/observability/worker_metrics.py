"""The /metrics server of a Celery worker, prefork-safe.

Tasks run in pool child processes, so their metrics are kept with
prometheus-client's multiprocess mode: every process writes its values to
memory-mapped files in PROMETHEUS_MULTIPROC_DIR, and the worker's main process
serves the merged view on METRICS_HOST:WORKER_METRICS_PORT.

``serve_worker_metrics`` must run in the worker's main process before any
metric object exists (before the task modules are imported): prometheus-client
picks a metric's storage when the metric is created. It gives each worker its
own folder, ``{tmp}/pixtools-metrics/{role}-{pid}``, empties it and removes
folders that dead workers left behind. A child that exits cleanly drops its live
gauges (task_signals); one that was killed is dropped at the next scrape.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from pixtools_shared.settings import Settings

log = structlog.get_logger(__name__)

ROLE_DEFAULT_PORTS = {"standard": 9100, "ml": 9101}
METRICS_ROOT_NAME = "pixtools-metrics"
# Modules whose metric objects must be created after the folder is set.
METRIC_MODULES = ("pixtools_shared.observability.metrics", "pixtools_shared.metrics")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _folder_pid(path: Path) -> int | None:
    _role, _, pid = path.name.rpartition("-")
    return int(pid) if pid.isdigit() else None


def prepare_multiprocess_dir(role: str, root: Path | None = None) -> Path:
    """Create and empty this worker's metrics folder; set PROMETHEUS_MULTIPROC_DIR.

    Raises RuntimeError when metrics were created before (they would not be
    shared between the pool processes).
    """
    created = [name for name in METRIC_MODULES if name in sys.modules]
    if created:
        raise RuntimeError(
            f"metric modules imported before the metrics folder was set: {created}"
        )

    root = root or Path(tempfile.gettempdir()) / METRICS_ROOT_NAME
    root.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    for stale in root.glob(f"{role}-*"):
        stale_pid = _folder_pid(stale)
        if stale_pid is not None and stale_pid != pid and not pid_alive(stale_pid):
            shutil.rmtree(stale, ignore_errors=True)

    directory = root / f"{role}-{pid}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    inherited = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if inherited and inherited != str(directory):
        log.info("metrics_folder_replaced", inherited=inherited)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)

    # prometheus-client chose its value class when it was first imported.
    from prometheus_client import values

    values.ValueClass = values.get_value_class()

    def remove_folder() -> None:
        if os.getpid() == pid:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove_folder)
    return directory


class LiveMultiProcessCollector:
    """MultiProcessCollector that first drops the live gauges of dead processes."""

    def __init__(self, directory: Path) -> None:
        from prometheus_client.multiprocess import MultiProcessCollector

        self.directory = directory
        self.collector = MultiProcessCollector(None, path=str(directory))

    def dead_pids(self) -> set[int]:
        pids: set[int] = set()
        for path in self.directory.glob("gauge_live*_*.db"):
            pid = path.stem.rpartition("_")[2]
            if pid.isdigit() and not pid_alive(int(pid)):
                pids.add(int(pid))
        return pids

    def collect(self) -> Iterable[Any]:
        from prometheus_client import multiprocess

        for pid in self.dead_pids():
            multiprocess.mark_process_dead(pid, str(self.directory))
        return self.collector.collect()


def _child_pids(parent: int) -> list[int]:
    """Pool processes: the children of ``parent`` (Linux /proc, else none)."""
    children: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return children
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(parent):
            children.append(int(entry.name))
    return children


def _resident_bytes(pid: int) -> int:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


class PoolCollector:
    """Number and resident memory of the worker's pool processes."""

    def __init__(self, parent: int) -> None:
        self.parent = parent

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        children = _child_pids(self.parent)
        yield GaugeMetricFamily(
            "pixtools_worker_pool_processes",
            "Pool processes of this worker that are alive.",
            value=len(children),
        )
        yield GaugeMetricFamily(
            "pixtools_worker_pool_resident_memory_bytes",
            "Resident memory of this worker's pool processes together.",
            value=sum(_resident_bytes(pid) for pid in children),
        )


@dataclass
class WorkerMetricsServer:
    """A running metrics server: its address, folder and HTTP server."""

    host: str
    port: int
    directory: Path
    server: Any
    thread: threading.Thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def metrics_port(role: str, settings: Settings) -> int:
    if settings.WORKER_METRICS_PORT is not None:
        return settings.WORKER_METRICS_PORT
    return ROLE_DEFAULT_PORTS[role]


def serve_worker_metrics(
    role: str, settings: Settings, *, root: Path | None = None
) -> WorkerMetricsServer | None:
    """Prepare the multiprocess folder and start the metrics HTTP server.

    ``root`` is the parent of the per-worker folders (default
    ``{tmp}/pixtools-metrics``). Returns None when WORKER_METRICS_PORT is 0 or
    the port cannot be bound; the worker runs on without metrics then, and the
    error is logged.
    """
    directory = prepare_multiprocess_dir(role, root)
    port = metrics_port(role, settings)
    if port == 0:
        log.info("worker_metrics_disabled", role=role)
        return None

    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry()
    registry.register(LiveMultiProcessCollector(directory))
    registry.register(PoolCollector(os.getpid()))
    ProcessCollector(registry=registry)
    try:
        server, thread = start_http_server(
            port, addr=settings.METRICS_HOST, registry=registry
        )
    except OSError as exc:
        log.error(
            "worker_metrics_server_failed",
            role=role,
            host=settings.METRICS_HOST,
            port=port,
            error=str(exc),
        )
        return None

    bound_port = int(server.server_address[1])
    log.info(
        "worker_metrics_serving",
        role=role,
        host=settings.METRICS_HOST,
        port=bound_port,
        directory=str(directory),
    )
    return WorkerMetricsServer(
        settings.METRICS_HOST, bound_port, directory, server, thread
    )
