"""Tests of the worker metrics server, each in a fresh Python process.

Setting up multiprocess mode changes prometheus-client for the whole process,
so every scenario runs in a child interpreter with this test's sys.path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pixtools_shared.testing import free_port

# Forks a pool-like child that records metrics and exits, then scrapes the
# parent's server: the child's counter and histogram must be in the output,
# its live gauge must be gone.
SCRAPE_AFTER_CHILD = """
import os, sys, httpx
from pathlib import Path
from pixtools_shared.settings import Settings
from pixtools_shared.observability import worker_metrics

root = Path(sys.argv[1])
stale = root / "standard-999999999"
stale.mkdir(parents=True)
(stale / "counter_999999999.db").write_bytes(b"")
settings = Settings(METRICS_HOST="127.0.0.1", WORKER_METRICS_PORT=int(sys.argv[2]))
server = worker_metrics.serve_worker_metrics("standard", settings, root=root)
assert server is not None
assert not stale.exists(), "stale folder kept"
assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(server.directory)
assert server.directory == root / f"standard-{os.getpid()}"

from pixtools_shared.observability import metrics

task = {"task": "pixtools.convert", "queue": "standard"}
pid = os.fork()
if pid == 0:
    metrics.TASKS.labels(state="success", **task).inc()
    metrics.TASK_DURATION.labels(**task).observe(0.2)
    metrics.TASKS_IN_PROGRESS.labels(**task).inc()
    os._exit(0)
os.waitpid(pid, 0)
metrics.TASKS.labels(state="success", **task).inc()

text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
print(text)
server.close()
"""

IMPORTED_TOO_EARLY = """
import pixtools_shared.observability.metrics
import sys
from pathlib import Path
from pixtools_shared.observability import worker_metrics
try:
    worker_metrics.prepare_multiprocess_dir("standard", Path(sys.argv[1]))
except RuntimeError as exc:
    print("refused:", exc)
"""

PORT_TAKEN = """
import socket, sys
from pathlib import Path
from pixtools_shared.settings import Settings
from pixtools_shared.observability import worker_metrics

holder = socket.socket()
holder.bind(("127.0.0.1", 0))
holder.listen()
port = holder.getsockname()[1]
root = Path(sys.argv[1])
in_use = worker_metrics.serve_worker_metrics(
    "ml", Settings(METRICS_HOST="127.0.0.1", WORKER_METRICS_PORT=port), root=root
)
off = worker_metrics.serve_worker_metrics(
    "ml", Settings(WORKER_METRICS_PORT=0), root=root
)
print("in use:", in_use, "off:", off)
"""


def run_python(code: str, *args: str) -> str:
    environment = dict(os.environ)
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    # The code is a constant of this module.
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_scrape_merges_child_process_metrics(tmp_path: Path) -> None:
    output = run_python(SCRAPE_AFTER_CHILD, str(tmp_path), str(free_port()))
    task = 'queue="standard",task="pixtools.convert"'
    succeeded = 'queue="standard",state="success",task="pixtools.convert"'
    assert f"pixtools_tasks_total{{{succeeded}}} 2.0" in output
    assert f"pixtools_task_duration_seconds_count{{{task}}} 1.0" in output
    assert f'pixtools_task_duration_seconds_bucket{{le="0.25",{task}}} 1.0' in output
    # The child is dead, so its live gauge no longer counts.
    assert f"pixtools_tasks_in_progress{{{task}}} 1.0" not in output
    assert "pixtools_worker_pool_processes 0.0" in output
    assert "process_resident_memory_bytes" in output


def test_metrics_created_first_refused(tmp_path: Path) -> None:
    output = run_python(IMPORTED_TOO_EARLY, str(tmp_path))
    assert (
        "refused: metric modules imported before the metrics folder was set" in output
    )
    assert "pixtools_shared.observability.metrics" in output


def test_port_in_use_or_zero_serves_nothing(tmp_path: Path) -> None:
    output = run_python(PORT_TAKEN, str(tmp_path))
    assert "in use: None off: None" in output
