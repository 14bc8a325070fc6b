from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from pixtools_shared.db.migrate import current_revision, head_revision, upgrade_database
from pixtools_shared.db.models import Base, Job, JobStatus
from pixtools_shared.db.session import create_db_engine, get_session_factory


def test_upgrade_reaches_head(database_url: str) -> None:
    assert current_revision(database_url) == head_revision()


def test_upgrade_twice_is_noop(database_url: str) -> None:
    upgrade_database(database_url)

    assert current_revision(database_url) == head_revision()


def test_schema_matches_models(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_constraint_names_fixed(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        inspector = inspect(engine)
        unique = {
            constraint["name"]
            for constraint in inspector.get_unique_constraints("idempotency_records")
        }
        foreign = {
            constraint["name"]
            for constraint in inspector.get_foreign_keys("job_operations")
        }
    finally:
        engine.dispose()

    assert unique == {"uq_idempotency_records_scope_key"}
    assert foreign == {"fk_job_operations_job_id_jobs"}


def _job(job_id: str, created_at: datetime) -> Job:
    return Job(
        id=job_id,
        status=JobStatus.QUEUED,
        created_at=created_at,
        updated_at=created_at,
        expires_at=created_at + timedelta(days=1),
        source_filename="a.png",
        source_format="PNG",
        source_width=1,
        source_height=1,
        source_size_bytes=10,
        finalize_attempts=0,
        webhook_attempts=0,
    )


def test_timestamps_round_trip_as_utc(database_url: str) -> None:
    factory = get_session_factory(database_url)
    local = datetime(2030, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    with factory() as session:
        session.add(_job("00000000-0000-4000-8000-000000000001", local))
        session.commit()

    with factory() as session:
        loaded = session.get(Job, "00000000-0000-4000-8000-000000000001")
        assert loaded is not None
        assert loaded.created_at == datetime(2030, 5, 1, 12, 30, tzinfo=UTC)
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)


def test_naive_timestamp_rejected(database_url: str) -> None:
    factory = get_session_factory(database_url)
    with factory() as session:
        session.add(_job("00000000-0000-4000-8000-000000000002", datetime(2030, 1, 1)))
        with pytest.raises(Exception, match="naive datetime"):
            session.flush()


def test_deleting_job_cascades(database_url: str) -> None:
    factory = get_session_factory(database_url)
    now = datetime.now(UTC)
    job_id = "00000000-0000-4000-8000-000000000003"
    with factory() as session:
        session.add(_job(job_id, now))
        session.flush()
        session.execute(
            text(
                "INSERT INTO job_operations (job_id, name, position, queue, status,"
                " params, attempts, interruptions, dispatch_count, queued_at,"
                " updated_at) VALUES (:job_id, 'jpg', 0, 'standard', 'QUEUED', '{}',"
                " 0, 0, 1, :now, :now)"
            ),
            {"job_id": job_id, "now": now.replace(tzinfo=None)},
        )
        session.commit()

    with factory() as session:
        session.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job_id})
        session.commit()
        remaining = session.execute(
            text("SELECT count(*) FROM job_operations WHERE job_id = :id"),
            {"id": job_id},
        ).scalar_one()

    assert remaining == 0
