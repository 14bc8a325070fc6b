"""A real API server process on 127.0.0.1 for tests that need one (memory, HTTP).

``running_api_server`` migrates the database, starts ``python -m pixtools_api``
with the given environment on a free port, waits for GET /api/livez and stops
the process afterwards. Only test modules import this.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from pixtools_shared.db import upgrade_database
from pixtools_shared.testing import free_port

STARTUP_TIMEOUT_SECONDS = 60.0

# Settings a test run may have in its own environment; the child gets only
# what the test passes.
INHERITED_SETTINGS = (
    "REDIS_URL",
    "DATABASE_URL",
    "BROKER_URL",
    "API_KEYS",
    "ALLOW_ANONYMOUS",
    "STORAGE_BACKEND",
    "DATA_DIR",
)


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    pid: int
    log_path: Path

    def rss_kib(self) -> int:
        """Resident set size of the server process (VmRSS), in KiB."""
        return read_proc_status(self.pid, "VmRSS")

    def peak_rss_kib(self) -> int:
        """Peak resident set size since the process started (VmHWM), in KiB."""
        return read_proc_status(self.pid, "VmHWM")


def read_proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/{pid}/status")


@contextmanager
def running_api_server(
    tmp_path: Path, environment: Mapping[str, str]
) -> Iterator[LiveServer]:
    """Run the API with ``environment`` (plus test defaults) until the block ends."""
    port = free_port()
    data_dir = tmp_path / "api-data"
    env = {
        key: value for key, value in os.environ.items() if key not in INHERITED_SETTINGS
    }
    env.update(
        {
            "ENVIRONMENT": "test",
            "DATA_DIR": str(data_dir),
            "BROKER_URL": "filesystem://",
            "STORAGE_BACKEND": "filesystem",
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PYTHONPATH": os.pathsep.join(
                str(Path(entry).resolve()) for entry in sys.path
            ),
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(environment)
    database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'pixtools.db'}"
    env["DATABASE_URL"] = database_url
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(database_url)

    log_path = tmp_path / f"api-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pixtools_api"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process.pid, log_path)
    try:
        _wait_until_live(server, process)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_live(server: LiveServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the API exited with {process.returncode}:\n"
                + server.log_path.read_text(errors="replace")
            )
        try:
            if httpx.get(f"{server.base_url}/api/livez", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        "the API did not start:\n" + server.log_path.read_text(errors="replace")
    )
