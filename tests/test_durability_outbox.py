"""Broker down at submit time: the API still accepts, the outbox delivers later.

The API here is the real app in this process, with BROKER_URL pointing at a
closed port. POST /api/process commits the job and its outbox rows, fails to
publish them and still returns 202. Once a broker is reachable, beat's relay
task publishes the rows and the worker completes the job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from durability_fixtures import servers_stack
from durability_platform import Stack, png_bytes
from fastapi.testclient import TestClient
from sqlalchemy import select

from pixtools_api.app import create_app
from pixtools_shared.db.models import OutboxMessage
from pixtools_shared.db.session import session_scope
from pixtools_shared.settings import Settings
from pixtools_shared.testing import free_port

# The closed-port publish fails at once; the bound leaves room for a slow CI box.
MAX_ACCEPT_SECONDS = 5.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("durability-outbox")
    with servers_stack(tmp, "pixtools_dur_outbox") as started:
        yield started


def _outbox_rows(job_id: str) -> list[OutboxMessage]:
    with session_scope() as session:
        rows = list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.job_id == job_id)
                .order_by(OutboxMessage.id)
            )
        )
        session.expunge_all()
        return rows


def test_submit_with_broker_down_delivered_later(stack: Stack) -> None:
    down = Settings(
        BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}//",
        ALLOW_ANONYMOUS=True,
    )
    with TestClient(create_app(down)) as client:
        started = time.monotonic()
        response = client.post(
            "/api/process",
            files={"file": ("photo.png", png_bytes(), "image/png")},
            data={"operations": json.dumps(["png", "metadata"])},
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        status = client.get(f"/api/jobs/{job_id}").json()["status"]

    assert elapsed < MAX_ACCEPT_SECONDS
    assert status == "QUEUED"
    rows = _outbox_rows(job_id)
    assert [row.args for row in rows] == [[job_id, "png"], [job_id, "metadata"]]
    assert all(row.sent_at is None for row in rows)
    assert all(
        row.last_error and "Connection refused" in row.last_error for row in rows
    )

    # The broker is back: the worker and beat (whose relay runs every second)
    # start against the real one.
    stack.start_worker()
    stack.start_beat()
    job = stack.wait_for_jobs([job_id], timeout=120)[job_id]

    assert job.status == "COMPLETED", job.error_message
    assert all(row.sent_at is not None for row in _outbox_rows(job_id))
