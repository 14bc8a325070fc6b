"""Module-scoped building blocks of the durability tests.

``servers_stack`` gives a test module its own PostgreSQL database and RabbitMQ
virtual host on the shared servers, plus a moto S3 server, and skips when a
server is missing. The outage tests build their stacks on private servers
instead (durability_servers).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from durability_platform import Stack, base_overrides, durability_stack
from e2e_servers import moto_s3_server, port_open

from pixtools_shared.testing import (
    postgres_available,
    rabbitmqctl_available,
    temporary_postgres_database,
    temporary_rabbitmq_vhost,
)


def require_shared_servers() -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    if not port_open(5672) or not rabbitmqctl_available():
        pytest.skip("RabbitMQ on 127.0.0.1:5672 with rabbitmqctl is needed")


@contextmanager
def servers_stack(
    tmp: Path, prefix: str, extra: dict[str, str] | None = None
) -> Iterator[Stack]:
    """A stack on a fresh database, a fresh vhost (quorum queues) and moto S3."""
    require_shared_servers()
    with ExitStack() as resources:
        database_url = resources.enter_context(temporary_postgres_database(prefix))
        broker_url = resources.enter_context(temporary_rabbitmq_vhost(prefix))
        s3 = resources.enter_context(moto_s3_server())
        overrides = base_overrides(tmp, database_url, broker_url, s3)
        overrides.update(extra or {})
        yield resources.enter_context(durability_stack(tmp, overrides))
