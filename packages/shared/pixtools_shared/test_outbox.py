from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import select

from pixtools_shared import jobs, outbox
from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.db.models import OutboxMessage, utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.settings import Settings
from pixtools_shared.testing import free_port


def _create_job(settings: Settings, names: list[str]) -> str:
    with session_scope() as session:
        job = jobs.create_job(
            session,
            operations=parse_operation_request(json.dumps(names)),
            source=jobs.SourceInfo("in.png", "PNG", 4, 4, 10),
            settings=settings,
        )
        return job.id


def _rows(job_id: str) -> list[OutboxMessage]:
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


def _broker_messages(settings: Settings) -> list[tuple[str, str, list[Any]]]:
    found = []
    for path in sorted(settings.broker_folder.iterdir()):
        payload = json.loads(path.read_text())
        args = json.loads(base64.b64decode(payload["body"]))[0]
        found.append((payload["headers"]["task"], payload["headers"]["id"], args))
    return found


@pytest.fixture
def app(configured_env: Settings) -> Iterator[Celery]:
    celery_app = create_celery_app(configured_env)
    yield celery_app
    celery_app.close()


def test_create_job_writes_outbox_rows(configured_env: Settings) -> None:
    job_id = _create_job(configured_env, ["png", "denoise"])

    rows = _rows(job_id)
    assert [(row.task_name, row.queue, row.args) for row in rows] == [
        ("pixtools.convert", "standard", [job_id, "png"]),
        ("pixtools.denoise", "ml", [job_id, "denoise"]),
    ]
    assert all(row.sent_at is None and row.attempts == 0 for row in rows)
    assert len({row.task_id for row in rows}) == 2


def test_rolled_back_job_leaves_no_outbox_row(configured_env: Settings) -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        job = jobs.create_job(
            session,
            operations=parse_operation_request('["png"]'),
            source=jobs.SourceInfo("in.png", "PNG", 4, 4, 10),
            settings=configured_env,
        )
        job_id = job.id
        raise RuntimeError("request failed after the insert")

    assert _rows(job_id) == []


def test_relay_publishes_and_marks_sent(configured_env: Settings, app: Celery) -> None:
    job_id = _create_job(configured_env, ["png", "metadata"])

    report = outbox.relay(app, job_id=job_id)

    assert (report.claimed, report.sent, report.failed) == (2, 2, 0)
    rows = _rows(job_id)
    assert all(row.sent_at is not None and row.attempts == 1 for row in rows)
    assert _broker_messages(configured_env) == [
        ("pixtools.convert", rows[0].task_id, [job_id, "png"]),
        ("pixtools.extract_metadata", rows[1].task_id, [job_id, "metadata"]),
    ]
    assert outbox.relay(app, job_id=job_id).claimed == 0
    assert len(_broker_messages(configured_env)) == 2


def test_relay_keeps_rows_when_broker_down(
    configured_env: Settings, app: Celery, tmp_path: Any
) -> None:
    job_id = _create_job(configured_env, ["png"])
    closed = Settings(
        ENVIRONMENT="test",
        DATA_DIR=tmp_path / "closed",
        DATABASE_URL=configured_env.database_url,
        BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}//",
        BROKER_PUBLISH_TIMEOUT_SECONDS=1,
    )
    down = create_celery_app(closed)
    try:
        report = outbox.relay(down, job_id=job_id, settings=closed)
    finally:
        down.close()

    assert (report.claimed, report.sent, report.failed) == (1, 0, 1)
    [row] = _rows(job_id)
    assert row.sent_at is None
    assert row.last_error is not None
    assert "Connection refused" in row.last_error
    assert row.available_at > utc_now()

    # Once the retry delay has passed, the relay of a healthy broker sends it.
    later = utc_now() + timedelta(seconds=120)
    assert outbox.relay(app, job_id=job_id, now=later).sent == 1
    [row] = _rows(job_id)
    assert row.sent_at is not None
    assert row.attempts == 2
    assert row.last_error is None


def test_claimed_rows_skipped_by_second_relay(
    configured_env: Settings, app: Celery
) -> None:
    job_id = _create_job(configured_env, ["png"])
    now = utc_now()

    first = outbox._claim(configured_env, now, None, job_id)
    second = outbox._claim(configured_env, now, None, job_id)

    assert [message.args for message in first] == [[job_id, "png"]]
    assert second == []
    expired = now + timedelta(seconds=configured_env.OUTBOX_CLAIM_SECONDS + 1)
    assert len(outbox._claim(configured_env, expired, None, job_id)) == 1


def test_delayed_row_waits_until_due(configured_env: Settings, app: Celery) -> None:
    job_id = _create_job(configured_env, ["png"])
    outbox.relay(app, job_id=job_id)
    with session_scope() as session:
        delayed = outbox.enqueue_operation(
            session, job_id, "png", task_id="retry-id", retries=2, delay_seconds=30
        )
        session.flush()
        delayed_id = delayed.id

    assert outbox.relay(app, ids=[delayed_id]).claimed == 0
    due = utc_now() + timedelta(seconds=31)
    assert outbox.relay(app, ids=[delayed_id], now=due).sent == 1
    task, task_id, args = _broker_messages(configured_env)[-1]
    assert (task, task_id, args) == ("pixtools.convert", "retry-id", [job_id, "png"])
    last = json.loads(sorted(configured_env.broker_folder.iterdir())[-1].read_text())
    assert last["headers"]["retries"] == 2


def test_delete_sent_keeps_unsent(configured_env: Settings, app: Celery) -> None:
    sent_job = _create_job(configured_env, ["png"])
    outbox.relay(app, job_id=sent_job)
    unsent_job = _create_job(configured_env, ["png"])

    with session_scope() as session:
        deleted = outbox.delete_sent(session, before=utc_now() + timedelta(seconds=1))

    assert deleted == 1
    assert _rows(sent_job) == []
    assert len(_rows(unsent_job)) == 1
