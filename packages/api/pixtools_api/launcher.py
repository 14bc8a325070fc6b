"""One-command launcher: the whole platform as child processes on one machine.

With no environment set it runs the embedded profile (SQLite, filesystem storage
and a filesystem broker under DATA_DIR). DATABASE_URL, BROKER_URL, REDIS_URL and
the S3 settings switch each part to a real server, because every child reads the
same environment. The launcher migrates the database, creates the broker
folders, then starts the API, the standard worker, the ML worker and beat. It
restarts nothing: when a child exits on its own, the launcher stops the others
and exits with status 1. SIGINT or SIGTERM stops every child with SIGTERM, waits
for the grace period and then sends SIGKILL; a second signal skips the wait.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

import structlog

from pixtools_shared.celery_app import ensure_broker_folders
from pixtools_shared.db import upgrade_database
from pixtools_shared.logging_setup import configure_logging
from pixtools_shared.settings import Settings, get_settings

logger = structlog.get_logger(__name__)

POLL_INTERVAL_SECONDS = 0.2
DEFAULT_GRACE_SECONDS = 20.0
# Extra seconds past the API's own shutdown grace before the launcher kills it.
GRACE_MARGIN_SECONDS = 5.0
DEFAULT_READY_TIMEOUT_SECONDS = 60.0

# Linux prctl option that sends the child a signal when its parent dies, so the
# children do not outlive a launcher killed with SIGKILL.
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildSpec:
    """One process the launcher runs: a display name and its argv."""

    name: str
    argv: list[str]


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]


def build_child_specs(python: str = sys.executable) -> list[ChildSpec]:
    """Return the processes of the platform, each run with the given interpreter."""
    return [
        ChildSpec("api", [python, "-m", "pixtools_api"]),
        ChildSpec(
            "worker-standard", [python, "-m", "pixtools_worker_standard", "worker"]
        ),
        ChildSpec("worker-ml", [python, "-m", "pixtools_worker_ml", "worker"]),
        ChildSpec("beat", [python, "-m", "pixtools_worker_standard", "beat"]),
    ]


def prepare_data(settings: Settings) -> None:
    """Create the embedded folders and migrate the database to the latest revision."""
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    ensure_broker_folders(settings)
    settings.beat_schedule_file.parent.mkdir(parents=True, exist_ok=True)

    logger.info("database_migration_started")
    upgrade_database(settings.database_url)
    logger.info("database_migration_finished")


def _child_environment(settings: Settings) -> dict[str, str]:
    # Children start in the same folder, but an absolute DATA_DIR keeps them on
    # the same files even if one of them changes its working directory.
    environment = dict(os.environ)
    environment["DATA_DIR"] = str(settings.DATA_DIR.resolve())
    return environment


def _die_with_parent() -> None:
    # Runs in the child between fork and exec (Linux only, best effort).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Launcher:
    """Starts the children, watches them and stops them all together."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        environment: dict[str, str],
        grace_seconds: float,
    ) -> None:
        self.specs = list(specs)
        self.environment = environment
        self.grace_seconds = grace_seconds
        self.children: list[Child] = []
        self.stop_requested = False
        self.force_requested = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested:
            self.force_requested = True
            logger.warning("launcher_force_stop_requested", signal=signum)
            return
        self.stop_requested = True
        logger.info("launcher_stop_requested", signal=signum)

    def start_all(self) -> None:
        for spec in self.specs:
            # A new session keeps the terminal's Ctrl-C away from the children, so
            # each gets exactly one SIGTERM from the launcher and shuts down warm.
            # The argv is fixed by build_child_specs, never taken from input.
            process = subprocess.Popen(  # noqa: S603
                spec.argv,
                env=self.environment,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            self.children.append(Child(spec, process))
            logger.info("child_started", child=spec.name, pid=process.pid)

    def find_exited_child(self) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None:
                return child
        return None

    def watch(self) -> int:
        """Wait for a stop signal or an exited child; return the launcher's status."""
        while not self.stop_requested:
            exited = self.find_exited_child()
            if exited is not None:
                logger.error(
                    "child_exited_unexpectedly",
                    child=exited.spec.name,
                    pid=exited.process.pid,
                    returncode=exited.process.returncode,
                )
                self.stop_all()
                return 1
            time.sleep(POLL_INTERVAL_SECONDS)

        self.stop_all()
        return 0

    def stop_all(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                logger.info(
                    "child_stopping", child=child.spec.name, pid=child.process.pid
                )
                _send_signal(child, signal.SIGTERM)

        deadline = time.monotonic() + self.grace_seconds
        while time.monotonic() < deadline and not self.force_requested:
            if all(child.process.poll() is not None for child in self.children):
                break
            time.sleep(POLL_INTERVAL_SECONDS)

        for child in self.children:
            if child.process.poll() is None:
                logger.warning(
                    "child_killed_after_grace_period",
                    child=child.spec.name,
                    pid=child.process.pid,
                    grace_seconds=self.grace_seconds,
                )
                _send_signal(child, signal.SIGKILL)
            child.process.wait()
            logger.info(
                "child_stopped",
                child=child.spec.name,
                pid=child.process.pid,
                returncode=child.process.returncode,
            )


def _send_signal(child: Child, signum: int) -> None:
    try:
        child.process.send_signal(signum)
    except ProcessLookupError:
        logger.info("child_already_gone", child=child.spec.name, pid=child.process.pid)


def wait_for_port(host: str, port: int, timeout: float, launcher: Launcher) -> bool:
    """Wait until host:port accepts TCP connections; False on timeout or stop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if launcher.stop_requested or launcher.find_exited_child() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(POLL_INTERVAL_SECONDS)
    return False


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pixtools",
        description="Run the PixTools API, workers and beat on this machine.",
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=None,
        help="seconds each child gets to stop after SIGTERM before SIGKILL "
        f"(default {DEFAULT_GRACE_SECONDS:g}, or API_SHUTDOWN_GRACE_SECONDS + "
        f"{GRACE_MARGIN_SECONDS:g} when that is longer)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=DEFAULT_READY_TIMEOUT_SECONDS,
        help="seconds to wait for the API port to accept connections "
        f"(default {DEFAULT_READY_TIMEOUT_SECONDS:g})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the platform until a signal or a child's exit; return the exit status."""
    arguments = parse_arguments(argv)
    settings = get_settings()
    configure_logging(settings)

    try:
        prepare_data(settings)
    except Exception as exc:
        # Without a migrated database no child can work, so none is started.
        logger.error("platform_start_failed", error=str(exc), exc_info=exc)
        return 1

    grace_seconds = arguments.grace_seconds
    if grace_seconds is None:
        grace_seconds = max(
            DEFAULT_GRACE_SECONDS,
            settings.API_SHUTDOWN_GRACE_SECONDS + GRACE_MARGIN_SECONDS,
        )
    launcher = Launcher(
        build_child_specs(), _child_environment(settings), grace_seconds
    )
    signal.signal(signal.SIGINT, launcher.request_stop)
    signal.signal(signal.SIGTERM, launcher.request_stop)
    launcher.start_all()

    host, port = settings.API_HOST, settings.API_PORT
    if wait_for_port(host, port, arguments.ready_timeout, launcher):
        address = f"http://{host}:{port}/"
        logger.info("platform_ready", address=address)
        print(f"PixTools is running at {address} (Ctrl-C stops it)", flush=True)
    elif not launcher.stop_requested and launcher.find_exited_child() is None:
        logger.error(
            "api_not_ready", host=host, port=port, timeout=arguments.ready_timeout
        )

    status = launcher.watch()
    logger.info("launcher_stopped", status=status)
    return status


if __name__ == "__main__":
    sys.exit(main())
