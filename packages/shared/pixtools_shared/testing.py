"""Helpers for tests that run against real servers on 127.0.0.1.

PIXTOOLS_TEST_POSTGRES_URL (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
names the maintenance database where throwaway databases are created and dropped.
PIXTOOLS_TEST_RABBITMQ_HOST (default 127.0.0.1:5672) is the RabbitMQ the broker
tests use, each in its own virtual host made with rabbitmqctl.
PIXTOOLS_TEST_REDIS_URL (default ``redis://127.0.0.1:6379/0``) is the Redis of the
tests; they use unique key prefixes and delete their keys.
PIXTOOLS_AWKWARD_CORPUS (no default) is a folder of awkward real-world image files;
the tests that read it are skipped when it is unset.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_RABBITMQ_HOST = "127.0.0.1:5672"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
AWKWARD_CORPUS_ENV = "PIXTOOLS_AWKWARD_CORPUS"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_admin_url() -> str:
    return os.environ.get("PIXTOOLS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)


def postgres_available() -> bool:
    try:
        with psycopg.connect(postgres_admin_url(), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def temporary_postgres_database(prefix: str = "pixtools_unit") -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, then drop it."""
    admin_url = postgres_admin_url()
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def moto_s3_endpoint() -> Iterator[str]:
    """Run moto's S3 server on a free 127.0.0.1 port; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def rabbitmqctl_available() -> bool:
    return shutil.which("rabbitmqctl") is not None


def _rabbitmqctl(*args: str) -> None:
    executable = shutil.which("rabbitmqctl")
    if executable is None:
        raise RuntimeError("rabbitmqctl is not installed")
    # The arguments are vhost names made here, never outside input.
    subprocess.run(  # noqa: S603
        [executable, *args], check=True, capture_output=True, timeout=60
    )


@contextmanager
def temporary_rabbitmq_vhost(prefix: str = "pixtools_unit") -> Iterator[str]:
    """Create a RabbitMQ virtual host for guest, yield its amqp URL, delete it."""
    vhost = f"{prefix}_{secrets.token_hex(6)}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        host = os.environ.get("PIXTOOLS_TEST_RABBITMQ_HOST", DEFAULT_RABBITMQ_HOST)
        yield f"amqp://guest:guest@{host}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def redis_test_url() -> str:
    return os.environ.get("PIXTOOLS_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def redis_available(url: str | None = None) -> bool:
    """Tell whether the test Redis answers PING within two seconds."""
    import redis

    client = redis.Redis.from_url(
        url or redis_test_url(), socket_connect_timeout=2, socket_timeout=2
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def awkward_corpus() -> Path | None:
    """Return the awkward image corpus folder, or None when the setting is unset."""
    folder = os.environ.get(AWKWARD_CORPUS_ENV)
    return Path(folder) if folder else None


def awkward_corpus_files() -> list[Path]:
    """Return the corpus files sorted by name, or an empty list without a corpus."""
    folder = awkward_corpus()
    if folder is None:
        return []
    return sorted(path for path in folder.iterdir() if path.is_file())


def corpus_id(path: Path) -> str:
    """Return the file name as ASCII, for a readable pytest parameter id."""
    return path.name.encode("ascii", errors="replace").decode("ascii")
