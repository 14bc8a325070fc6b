"""Child processes of the end-to-end tests: the API, workers and the launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

STOP_GRACE_SECONDS = 30.0

# Statuses of a process that shut down on SIGTERM as intended. uvicorn re-raises
# the signal after its graceful shutdown, so the API reports -SIGTERM; Celery
# and the launcher exit with 0.
CLEAN_EXIT_CODES = frozenset({0, -signal.SIGTERM})


@dataclass
class ServiceProcess:
    """A running child process whose output goes to a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        return (
            f"--- {self.name} (pid {self.process.pid}, "
            f"returncode {self.process.poll()}) ---\n{self.log_tail()}"
        )


def child_environment(overrides: dict[str, str]) -> dict[str, str]:
    """The test's environment plus `overrides`, with this interpreter's sys.path.

    Passing sys.path on lets the children import the packages whichever way the
    tests were started (plain pytest with pythonpath, or a Pants sandbox).
    """
    environment = dict(os.environ)
    environment.update(overrides)
    paths = [entry for entry in sys.path if entry and Path(entry).exists()]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def start_service(
    name: str, module_args: list[str], environment: dict[str, str], log_dir: Path
) -> ServiceProcess:
    """Start `python -m <module_args>` in its own session, logging to a file."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log_file:
        # The argv is this interpreter and a module name chosen by the tests.
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", *module_args],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServiceProcess(name, process, log_path)


def stop_service(service: ServiceProcess, grace: float = STOP_GRACE_SECONDS) -> int:
    """Stop a child with SIGTERM, then SIGKILL after `grace`; return its status."""
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
    return service.process.returncode


def wait_for_health(
    base_url: str, services: list[ServiceProcess], timeout: float
) -> None:
    """Wait until GET /api/health returns 200. Raise early if a child exits."""
    deadline = time.monotonic() + timeout
    last_error = "no response"
    while time.monotonic() < deadline:
        for service in services:
            if service.process.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited early:\n{service.describe()}"
                )
        try:
            response = httpx.get(f"{base_url}/api/health", timeout=5)
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        else:
            if response.status_code == 200:
                return
            last_error = response.text
        time.sleep(0.5)
    logs = "\n".join(service.describe() for service in services)
    raise RuntimeError(f"API not healthy after {timeout} s: {last_error}\n{logs}")


def wait_for_log_line(service: ServiceProcess, text: str, timeout: float) -> None:
    """Wait until `text` appears in the child's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in service.log_tail(lines=10_000):
            return
        if service.process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"{text!r} not logged by {service.name}:\n{service.describe()}")
