from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from pixtools_shared.celery_app import broker_transport_options, ensure_broker_folders
from pixtools_shared.pytest_fixtures import (
    configured_env,
    database_url,
    db_session,
    postgres_database_url,
)
from pixtools_shared.settings import Settings

# The worker's Celery app is built at import from the environment; a throwaway
# DATA_DIR keeps that import from creating files in the checkout.
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="pixtools-ml-tests-"))

__all__ = [
    "configured_env",
    "database_url",
    "db_session",
    "ml_app",
    "postgres_database_url",
    "weights_copy",
]


def _drop_connections(app: Celery) -> None:
    # Producer pools keep the broker options they were created with.
    app.close()
    app.amqp._producer_pool = None


@pytest.fixture
def ml_app(configured_env: Settings) -> Iterator[Celery]:
    """The ML worker's app, sending to this test's filesystem broker folder."""
    from pixtools_worker_ml.app import app
    from pixtools_worker_ml.tasks import get_denoiser

    saved = {
        "broker_url": app.conf.broker_url,
        "broker_transport_options": app.conf.broker_transport_options,
    }
    ensure_broker_folders(configured_env)
    app.conf.broker_url = configured_env.BROKER_URL
    app.conf.broker_transport_options = broker_transport_options(configured_env)
    _drop_connections(app)
    get_denoiser.cache_clear()
    yield app
    get_denoiser.cache_clear()
    app.conf.update(saved)
    _drop_connections(app)


@pytest.fixture
def weights_copy(tmp_path: Path) -> Path:
    """The bundled float32 weights and their JSON, copied into tmp_path."""
    from pixtools_worker_ml.inference import bundled_weights_path

    with bundled_weights_path() as bundled:
        target = tmp_path / "model.pt"
        shutil.copyfile(bundled, target)
        shutil.copyfile(bundled.with_suffix(".json"), target.with_suffix(".json"))
    return target
