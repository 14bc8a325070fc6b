from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from celery import Celery

from pixtools_shared.celery_app import (
    broker_transport_options,
    broker_url,
    ensure_broker_folders,
)
from pixtools_shared.pytest_fixtures import (
    configured_env,
    database_url,
    db_session,
    postgres_database_url,
)
from pixtools_shared.settings import Settings

# The worker's Celery app reads DATA_DIR when it is imported. A throwaway folder
# keeps that import from creating broker folders in the checkout.
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="pixtools-worker-tests-"))

__all__ = [
    "configured_env",
    "database_url",
    "db_session",
    "postgres_database_url",
    "worker_app",
]


def _reset_connections(app: Celery) -> None:
    # Connection and producer pools are keyed by the broker options they were
    # built with, so both are dropped after the options change.
    app.close()
    app.amqp._producer_pool = None


@pytest.fixture
def worker_app(configured_env: Settings) -> Iterator[Celery]:
    """The standard worker's app, sending to this test's broker folder."""
    from pixtools_worker_standard.app import app

    original = {
        "broker_url": app.conf.broker_url,
        "broker_transport_options": app.conf.broker_transport_options,
    }
    ensure_broker_folders(configured_env)
    app.conf.broker_url = broker_url(configured_env)
    app.conf.broker_transport_options = broker_transport_options(configured_env)
    _reset_connections(app)
    yield app
    app.conf.update(original)
    _reset_connections(app)
