"""The PixTools platform started for a benchmark, every part on 127.0.0.1.

running_platform() creates a fresh PostgreSQL database, a RabbitMQ virtual host
(made with rabbitmqctl, or the shared "/" vhost where it is missing) and a moto S3
server process, and picks a Redis database number. It migrates the database,
creates the buckets, and starts the API (uvicorn, ``python -m pixtools_api``) and
the workers as child processes with that environment. On exit it stops the
children with SIGTERM (SIGKILL after a grace period) and drops the database and
the vhost.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import structlog
from kombu import Connection

from pixtools_shared.db import upgrade_database
from pixtools_shared.settings import Settings
from pixtools_shared.storage import S3Storage
from pixtools_shared.testing import (
    free_port,
    rabbitmqctl_available,
    temporary_postgres_database,
    temporary_rabbitmq_vhost,
)

log = structlog.get_logger(__name__)

LOCALHOST = "127.0.0.1"
SHARED_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_REDIS_DB = 14
# moto accepts any credentials.
S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"  # noqa: S105
PIXTOOLS_QUEUES = ("standard", "ml", "webhooks")

STARTUP_TIMEOUT_SECONDS = 180.0
STOP_GRACE_SECONDS = 30.0
WORKER_READY_TEXT = "ready."
BENCH_RATE_LIMIT_PER_MINUTE = 100_000_000


@dataclass
class PlatformOptions:
    """Processes to start and the settings they get."""

    standard_worker: bool = True
    ml_worker: bool = False
    worker_concurrency: int = 2
    redis_db: int = DEFAULT_REDIS_DB
    log_level: str = "INFO"
    # Every benchmark client is 127.0.0.1, one client to the API's per-client
    # limit. The limiter still runs (one Redis call per request) but never
    # rejects, so the scripts measure capacity rather than the limit.
    rate_limit_per_minute: int = BENCH_RATE_LIMIT_PER_MINUTE
    extra_environment: dict[str, str] = field(default_factory=dict)


@dataclass
class ChildProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@dataclass
class RunningPlatform:
    """Addresses and processes of a started platform."""

    base_url: str
    database_url: str
    broker_url: str
    broker_isolated: bool
    environment: dict[str, str]
    log_dir: Path
    children: list[ChildProcess]

    def psycopg_url(self) -> str:
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def count_rows(self, query: str) -> int:
        """Run a ``SELECT count(*) ...`` query on the platform's database."""
        with psycopg.connect(self.psycopg_url(), connect_timeout=10) as connection:
            row = connection.execute(query).fetchone()
        return int(row[0]) if row else 0

    def job_statuses(self) -> dict[str, str]:
        """Map of job id to status for every job row."""
        with psycopg.connect(self.psycopg_url(), connect_timeout=10) as connection:
            rows = connection.execute("SELECT id, status FROM jobs").fetchall()
        return {str(job_id): str(status) for job_id, status in rows}

    def check_children(self) -> None:
        """Raise RuntimeError when a child process has exited."""
        for child in self.children:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.process.returncode}:\n"
                    f"{child.log_tail()}"
                )


def port_open(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_servers() -> None:
    """Raise RuntimeError naming the servers that are not reachable."""
    missing = [
        name
        for name, port in (("PostgreSQL", 5432), ("RabbitMQ", 5672), ("Redis", 6379))
        if not port_open(port)
    ]
    if missing:
        raise RuntimeError(f"not reachable on 127.0.0.1: {', '.join(missing)}")


def child_environment(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment plus `overrides`, with sys.path as PYTHONPATH.

    Passing sys.path on lets the children import the PixTools packages however
    this process found them (source roots added by benchkit, or a Pants sandbox).
    """
    environment = dict(os.environ)
    environment.update(overrides)
    paths = [entry for entry in sys.path if entry and Path(entry).exists()]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def start_child(
    name: str, argv: list[str], environment: dict[str, str], log_dir: Path
) -> ChildProcess:
    """Start `argv` in a new session (its own process group), logging to a new file."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        # The argv is built by this module from fixed module names and ports.
        process = subprocess.Popen(  # noqa: S603
            argv,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.info("bench_child_started", child=name, pid=process.pid)
    return ChildProcess(name, process, log_path)


def stop_child(child: ChildProcess, grace: float = STOP_GRACE_SECONDS) -> int:
    """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
    if child.process.poll() is None:
        _signal_group(child, signal.SIGTERM)
        try:
            child.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("bench_child_killed", child=child.name, pid=child.process.pid)
            _signal_group(child, signal.SIGKILL)
            child.process.wait()
    # Pool processes of a Celery worker share the group; none may outlive it.
    _signal_group(child, signal.SIGKILL)
    log.info(
        "bench_child_stopped", child=child.name, returncode=child.process.returncode
    )
    return child.process.returncode


def _signal_group(child: ChildProcess, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signum)


def wait_until(
    condition_name: str,
    check: Callable[[], bool],
    children: list[ChildProcess],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited early ({child.process.returncode}) while "
                    f"waiting for {condition_name}:\n{child.log_tail()}"
                )
        if check():
            return
        time.sleep(0.3)
    tails = "\n".join(f"--- {c.name}\n{c.log_tail()}" for c in children)
    raise RuntimeError(
        f"timed out after {timeout} s waiting for {condition_name}\n{tails}"
    )


def api_healthy(base_url: str) -> bool:
    try:
        response = httpx.get(f"{base_url}/api/health", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def purge_shared_queues(broker_url: str) -> None:
    """Drop waiting PixTools messages on a broker shared with other runs."""
    with Connection(broker_url, connect_timeout=5) as connection:
        channel = connection.channel()
        for name in PIXTOOLS_QUEUES:
            try:
                channel.queue_purge(name)
            except Exception as exc:  # the queue may not exist yet
                log.info("bench_queue_not_purged", queue=name, error=str(exc))
                channel = connection.channel()


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """Run moto's S3 server as a child process; yield its endpoint URL."""
    port = free_port()
    child = start_child(
        "moto-s3",
        [sys.executable, "-m", "moto.server", "-H", LOCALHOST, "-p", str(port)],
        child_environment({}),
        log_dir,
    )
    try:
        wait_until("moto S3 server", lambda: port_open(port), [child], 60)
        yield f"http://{LOCALHOST}:{port}"
    finally:
        stop_child(child, grace=5)


@contextmanager
def broker_url() -> Iterator[tuple[str, bool]]:
    """Yield (amqp URL, isolated): a fresh vhost when rabbitmqctl is installed.

    Without rabbitmqctl the shared "/" vhost is used after purging the PixTools
    queues, so a test run using the same queues at the same time would interfere.
    """
    if rabbitmqctl_available():
        with temporary_rabbitmq_vhost("pixtools_bench") as url:
            yield url, True
        return
    log.warning("bench_shared_vhost", reason="rabbitmqctl not installed")
    purge_shared_queues(SHARED_BROKER_URL)
    yield SHARED_BROKER_URL, False


@contextmanager
def running_platform(
    folder: Path, options: PlatformOptions
) -> Iterator[RunningPlatform]:
    """Start the platform described in the module docstring; stop it on exit."""
    require_servers()
    log_dir = folder / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    with ExitStack() as stack:
        database_url = stack.enter_context(
            temporary_postgres_database("pixtools_bench")
        )
        amqp_url, isolated = stack.enter_context(broker_url())
        endpoint = stack.enter_context(moto_server(log_dir))

        port = free_port()
        base_url = f"http://{LOCALHOST}:{port}"
        overrides = {
            "ENVIRONMENT": "test",
            "DATA_DIR": str(folder / "data"),
            "API_HOST": LOCALHOST,
            "API_PORT": str(port),
            "PUBLIC_BASE_URL": base_url,
            "DATABASE_URL": database_url,
            "BROKER_URL": amqp_url,
            "REDIS_URL": f"redis://{LOCALHOST}:6379/{options.redis_db}",
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": endpoint,
            "S3_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "WORKER_CONCURRENCY": str(options.worker_concurrency),
            "LOG_LEVEL": options.log_level,
            "RATE_LIMIT_PER_MINUTE": str(options.rate_limit_per_minute),
            **options.extra_environment,
        }
        environment = child_environment(overrides)

        upgrade_database(database_url)
        S3Storage.from_settings(
            Settings.model_validate(_settings_fields(overrides))
        ).ensure_buckets()

        children: list[ChildProcess] = []
        stack.callback(_stop_all, children)
        if options.standard_worker:
            children.append(
                start_child(
                    "worker-standard",
                    [sys.executable, "-m", "pixtools_worker_standard", "worker"],
                    environment,
                    log_dir,
                )
            )
        if options.ml_worker:
            children.append(
                start_child(
                    "worker-ml",
                    [sys.executable, "-m", "pixtools_worker_ml", "worker"],
                    environment,
                    log_dir,
                )
            )
        children.append(
            start_child(
                "api", [sys.executable, "-m", "pixtools_api"], environment, log_dir
            )
        )

        wait_until(
            "API health",
            lambda: api_healthy(base_url),
            children,
            STARTUP_TIMEOUT_SECONDS,
        )
        for child in children:
            if child.name.startswith("worker"):
                wait_until(
                    f"{child.name} ready",
                    functools.partial(_logged_ready, child),
                    children,
                    STARTUP_TIMEOUT_SECONDS,
                )

        yield RunningPlatform(
            base_url=base_url,
            database_url=database_url,
            broker_url=amqp_url,
            broker_isolated=isolated,
            environment=environment,
            log_dir=log_dir,
            children=children,
        )


def _logged_ready(child: ChildProcess) -> bool:
    return WORKER_READY_TEXT in child.log_text()


def _settings_fields(overrides: dict[str, str]) -> dict[str, str]:
    names = set(Settings.model_fields)
    return {key: value for key, value in overrides.items() if key in names}


def _stop_all(children: list[ChildProcess]) -> None:
    # The API stops first so no new work arrives while the workers drain.
    for child in sorted(children, key=lambda c: c.name != "api"):
        stop_child(child)


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a live process, from /proc/<pid>/stat.

    Children that the process has not waited for are not included, so for a
    Celery worker this is the main process only.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; the fields after it do not.
    fields = text.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of every process in the process group led by `pid`."""
    total = 0.0
    found = False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid:
                continue
        except (ProcessLookupError, PermissionError):
            continue
        seconds = process_cpu_seconds(int(entry.name))
        if seconds is not None:
            total += seconds
            found = True
    return total if found else None
