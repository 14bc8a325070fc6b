"""Private servers for the durability tests, which restart or stop them.

The shared PostgreSQL, RabbitMQ and Redis on this machine serve every other test
run at the same time, so the outage tests never restart those. They start their
own instances from the installed server binaries in a temporary folder, and stop
them afterwards. The ports are free 127.0.0.1 ports below the kernel's ephemeral
range, because an outgoing connection can take a port from that range while a
stopped server waits to listen on it again. Each helper skips the test with the
reason when the binaries or the rights to run them are missing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

LOCALHOST = "127.0.0.1"
# Below Linux's default ephemeral range (32768-60999).
PRIVATE_PORT_RANGE = (20_000, 32_000)
START_TIMEOUT_SECONDS = 60.0


def private_port() -> int:
    """Return a free 127.0.0.1 port outside the ephemeral range."""
    for _ in range(200):
        port = random.randint(*PRIVATE_PORT_RANGE)
        with socket.socket() as probe:
            try:
                probe.bind((LOCALHOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(condition: object, timeout: float, description: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{description} not reached within {timeout:g} s")


def _run(
    argv: list[str], environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Every argv here names an installed server binary and paths made by the test.
    return subprocess.run(  # noqa: S603
        argv,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


# --- RabbitMQ ---------------------------------------------------------------

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node of its own: guest may connect over 127.0.0.1."""

    node: str
    port: int
    environment: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{LOCALHOST}:{self.port}//"

    def ctl(self, *args: str) -> str:
        result = _run([RABBITMQCTL, "-n", self.node, *args], self.environment)
        return result.stdout

    def stop_app(self) -> None:
        self.ctl("stop_app")
        wait_until(lambda: not port_open(self.port), 30, "RabbitMQ stopped")

    def start_app(self) -> None:
        self.ctl("start_app")
        wait_until(lambda: port_open(self.port), START_TIMEOUT_SECONDS, "RabbitMQ up")

    def restart(self) -> None:
        """Stop and start the RabbitMQ application (the node stays up)."""
        self.stop_app()
        self.start_app()


@contextmanager
def private_rabbitmq(folder: Path) -> Iterator[PrivateRabbitMQ]:
    if not (Path(RABBITMQ_SERVER).exists() and Path(RABBITMQCTL).exists()):
        pytest.skip("RabbitMQ server binaries are not installed")
    port, dist_port = private_port(), private_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "rabbitmq.conf"
    config.write_text(
        f"listeners.tcp.local = {LOCALHOST}:{port}\nloopback_users = none\n"
    )
    (folder / "enabled_plugins").write_text("[].\n")
    (folder / "env.conf").write_text("")
    node = f"pixdur{port}@localhost"

    environment = dict(os.environ)
    environment.update(
        {
            "HOME": str(folder),
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "pid"),
            "ERL_EPMD_ADDRESS": LOCALHOST,
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-kernel inet_dist_use_interface {127,0,0,1}"
            ),
        }
    )

    log_path = folder / "server.log"
    with log_path.open("wb") as log_file:
        try:
            process = subprocess.Popen(  # noqa: S603
                [RABBITMQ_SERVER],
                env=environment,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            pytest.skip(f"cannot start a private RabbitMQ node: {exc}")
    broker = PrivateRabbitMQ(node, port, environment, process, log_path)
    try:
        try:
            wait_until(lambda: port_open(port), START_TIMEOUT_SECONDS, "RabbitMQ up")
        except RuntimeError:
            pytest.skip(
                "the private RabbitMQ node did not start: "
                + log_path.read_text(errors="replace")[-1500:]
            )
        yield broker
    finally:
        try:
            broker.ctl("shutdown")
        except (subprocess.SubprocessError, OSError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


# --- PostgreSQL -------------------------------------------------------------


def _postgres_bin() -> Path | None:
    for version in ("17", "16", "15", "14"):
        folder = Path(f"/usr/lib/postgresql/{version}/bin")
        if (folder / "initdb").exists():
            return folder
    return None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of its own, run as the postgres system user."""

    bin_dir: Path
    data_dir: Path
    port: int
    user_prefix: list[str]
    options: str

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{LOCALHOST}:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        _run(
            [
                *self.user_prefix,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.data_dir.parent / "server.log"),
                "-w",
                "-t",
                "60",
                *args,
            ]
        )

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server for ``down_seconds``, then start it, as in a failover.

        Open connections break, and new ones fail while the server is down.
        """
        self.pg_ctl("stop", "-m", "fast")
        time.sleep(down_seconds)
        self.pg_ctl("-o", self.options, "start")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running PostgreSQL as root needs runuser to switch users")
        user_prefix = [runuser, "-u", "postgres", "--"]
    else:
        user_prefix = []
    # The postgres user must reach the cluster folder. pytest's own temp folders
    # are private to root, so the cluster gets a fresh folder right under the
    # system temp folder.
    folder = Path(tempfile.mkdtemp(prefix="pixtools-durability-pg-"))
    folder.chmod(0o777)
    data_dir = folder / "data"
    port = private_port()
    try:
        _run(
            [
                *user_prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-A",
                "trust",
                "-U",
                "postgres",
            ]
        )
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"initdb failed: {exc.stderr.strip()[-500:]}")
    options = f"-c listen_addresses={LOCALHOST} -p {port} -k {folder} -c fsync=off"
    server = PrivatePostgres(bin_dir, data_dir, port, user_prefix, options)
    try:
        server.pg_ctl("-o", options, "start")
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):
            server.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(folder, ignore_errors=True)


# --- Redis ------------------------------------------------------------------


@dataclass
class PrivateRedis:
    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server is not None
        with (self.folder / "redis.log").open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603
                [
                    server,
                    "--bind",
                    LOCALHOST,
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.folder),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: port_open(self.port), 30, "Redis up")

    def stop(self) -> None:
        """Stop the server the way an outage would: no save, connections dropped."""
        cli = shutil.which("redis-cli")
        assert cli is not None
        subprocess.run(  # noqa: S603
            [cli, "-p", str(self.port), "shutdown", "nosave"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if self.process is not None:
            self.process.wait(timeout=30)
            self.process = None


@contextmanager
def private_redis(folder: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are not installed")
    folder.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(private_port(), folder)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()
