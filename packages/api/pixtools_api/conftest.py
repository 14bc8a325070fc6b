"""Fixtures of the API unit tests: a real app on SQLite, filesystem storage and
kombu's in-memory broker, whose messages the tests consume to check dispatch."""

from __future__ import annotations

import io
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from fastapi.testclient import TestClient
from PIL import Image

from pixtools_api.app import create_app
from pixtools_api.services import ApiServices
from pixtools_shared.db import upgrade_database
from pixtools_shared.settings import Settings

TEST_MAX_UPLOAD_BYTES = 300_000
TEST_MAX_IMAGE_PIXELS = 4_000_000


@dataclass(frozen=True)
class SentTask:
    """One task message taken from the in-memory broker."""

    name: str
    args: list[Any]
    kwargs: dict[str, Any]


def drain_queue(celery: Celery, queue_name: str) -> list[SentTask]:
    """Consume every message waiting in `queue_name` and return them in order."""
    sent: list[SentTask] = []
    with celery.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue_name)
        try:
            while True:
                try:
                    message = simple.get_nowait()
                except queue.Empty:
                    break
                args, kwargs, _embed = message.decode()
                sent.append(SentTask(message.headers["task"], args, kwargs))
                message.ack()
        finally:
            simple.close()
    return sent


def build_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ENVIRONMENT": "test",
        "DATA_DIR": data_dir,
        "DATABASE_URL": f"sqlite:///{data_dir / 'api-test.db'}",
        "BROKER_URL": "memory://",
        "STORAGE_BACKEND": "filesystem",
        "PUBLIC_BASE_URL": "http://testserver",
        "MAX_UPLOAD_BYTES": TEST_MAX_UPLOAD_BYTES,
        "MAX_IMAGE_PIXELS": TEST_MAX_IMAGE_PIXELS,
        "REDIS_URL": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    built = build_settings(tmp_path)
    upgrade_database(built.database_url)
    return built


@pytest.fixture
def services(settings: Settings) -> Iterator[ApiServices]:
    built = ApiServices.from_settings(settings)
    for name in ("standard", "ml", "webhooks"):
        drain_queue(built.celery, name)
    yield built
    for name in ("standard", "ml", "webhooks"):
        drain_queue(built.celery, name)


@pytest.fixture
def client(settings: Settings, services: ApiServices) -> Iterator[TestClient]:
    app = create_app(settings, services)
    with TestClient(app) as test_client:
        yield test_client


def image_bytes(
    fmt: str = "PNG", size: tuple[int, int] = (64, 48), mode: str = "RGB"
) -> bytes:
    """Encode a small gradient image with Pillow."""
    image = Image.new(mode, size)
    for x in range(size[0]):
        for y in range(size[1]):
            value = (x * 4 % 256, y * 5 % 256, 128)
            image.putpixel((x, y), value if mode == "RGB" else (*value, 200))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()
