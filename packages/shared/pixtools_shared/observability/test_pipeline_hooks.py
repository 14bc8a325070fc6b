"""Tests of the pipeline observations: finished jobs count only when committed."""

from __future__ import annotations

from datetime import timedelta

import pybreaker
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from pixtools_shared import jobs
from pixtools_shared.db.models import utc_now
from pixtools_shared.observability import metrics, pipeline_hooks
from pixtools_shared.observability.breaker import BreakerMetricsListener
from pixtools_shared.observability.task_signals import job_fields
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.settings import Settings


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _new_job(session: Session, settings: Settings) -> str:
    job = jobs.create_job(
        session,
        operations=parse_operation_request('["jpg"]', None),
        source=jobs.SourceInfo("a.png", "PNG", 4, 4, 10),
        settings=settings,
        now=utc_now() - timedelta(seconds=30),
    )
    session.commit()
    return job.id


def test_finished_job_counted_after_commit(
    db_session: Session, configured_env: Settings
) -> None:
    job_id = _new_job(db_session, configured_env)
    before = _value("pixtools_jobs_finished_total", status="COMPLETED")
    durations = _value("pixtools_job_duration_seconds_count", status="COMPLETED")
    seconds = _value("pixtools_job_duration_seconds_sum", status="COMPLETED")

    pipeline_hooks.record_job_finished(db_session, job_id, "COMPLETED", utc_now())
    assert _value("pixtools_jobs_finished_total", status="COMPLETED") == before
    db_session.commit()

    assert _value("pixtools_jobs_finished_total", status="COMPLETED") == before + 1
    assert _value("pixtools_job_duration_seconds_count", status="COMPLETED") == (
        durations + 1
    )
    added = _value("pixtools_job_duration_seconds_sum", status="COMPLETED") - seconds
    assert 29 < added < 60


def test_rolled_back_finish_not_counted(
    db_session: Session, configured_env: Settings
) -> None:
    job_id = _new_job(db_session, configured_env)
    before = _value("pixtools_jobs_finished_total", status="FAILED")

    pipeline_hooks.record_job_finished(db_session, job_id, "FAILED", utc_now())
    db_session.rollback()
    db_session.commit()

    assert _value("pixtools_jobs_finished_total", status="FAILED") == before


def test_queue_wait_only_first_start() -> None:
    labels = {"operation": "webp", "queue": "standard"}
    before = _value("pixtools_operation_queue_wait_seconds_count", **labels)
    queued = utc_now()

    pipeline_hooks.observe_queue_wait("webp", queued, queued + timedelta(seconds=2), 1)
    pipeline_hooks.observe_queue_wait("webp", queued, queued + timedelta(seconds=9), 2)
    pipeline_hooks.observe_queue_wait("webp", queued, None, 1)

    assert _value("pixtools_operation_queue_wait_seconds_count", **labels) == before + 1


def test_unknown_labels_bounded() -> None:
    assert metrics.task_label("pixtools.convert") == "pixtools.convert"
    assert metrics.task_label("celery.ping") == "other"
    assert metrics.operation_label("gif") == "other"
    assert metrics.queue_label("dead_letters") == "dead_letters"
    assert metrics.queue_label("celery") == "other"
    assert metrics.job_status_label("RUNNING") == "other"
    assert metrics.retry_mode_label("republish") == "republish"


@pytest.mark.parametrize(
    ("task", "args", "kwargs", "expected"),
    [
        ("pixtools.convert", ["j1", "webp"], {}, {"job_id": "j1", "operation": "webp"}),
        (
            "pixtools.extract_metadata",
            ["j1"],
            {},
            {"job_id": "j1", "operation": "metadata"},
        ),
        (
            "pixtools.denoise",
            [],
            {"job_id": "j2"},
            {"job_id": "j2", "operation": "denoise"},
        ),
        ("pixtools.finalize_job", ["j3"], {}, {"job_id": "j3"}),
        ("pixtools.deliver_webhook", ["j4"], {}, {"job_id": "j4"}),
        ("pixtools.purge_expired_jobs", [], {}, {}),
        ("pixtools.convert", [17], {}, {}),
    ],
)
def test_job_fields_from_task_arguments(
    task: str, args: list[object], kwargs: dict[str, object], expected: dict[str, str]
) -> None:
    assert job_fields(task, args, kwargs) == expected


def test_breaker_listener_tracks_open_breakers() -> None:
    listener = BreakerMetricsListener("test-breaker")
    breaker = pybreaker.CircuitBreaker(
        fail_max=1, reset_timeout=60, listeners=[listener], name="hooks.example.com"
    )
    opened = _value(
        "pixtools_circuit_breaker_transitions_total",
        breaker="test-breaker",
        state="open",
    )

    def fail() -> None:
        raise OSError("connection refused")

    with pytest.raises((OSError, pybreaker.CircuitBreakerError)):
        breaker.call(fail)
    assert _value("pixtools_circuit_breakers_open", breaker="test-breaker") == 1
    assert (
        _value(
            "pixtools_circuit_breaker_transitions_total",
            breaker="test-breaker",
            state="open",
        )
        == opened + 1
    )

    closed = _value(
        "pixtools_circuit_breaker_transitions_total",
        breaker="test-breaker",
        state="closed",
    )
    breaker.close()
    assert _value("pixtools_circuit_breakers_open", breaker="test-breaker") == 0
    assert (
        _value(
            "pixtools_circuit_breaker_transitions_total",
            breaker="test-breaker",
            state="closed",
        )
        == closed + 1
    )
