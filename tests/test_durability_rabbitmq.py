"""RabbitMQ restarted while 50 jobs are in flight: all 50 complete.

The test runs its own RabbitMQ node (durability_servers.private_rabbitmq), so
restarting it disturbs no other test. Quorum queues keep their messages over
the restart, and messages a worker had not acknowledged are delivered again.
The workers and beat reconnect. Publishes that failed during the outage
(finalize messages, jobs submitted meanwhile) wait in the outbox until beat's
relay sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from durability_fixtures import require_shared_servers
from durability_platform import Stack, base_overrides, durability_stack, stored_keys
from durability_servers import private_rabbitmq
from e2e_servers import moto_s3_server

from pixtools_shared.testing import temporary_postgres_database

JOBS_BEFORE_RESTART = 40
JOBS_DURING_OUTAGE = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_shared_servers()
    tmp = tmp_path_factory.mktemp("durability-rabbitmq")
    with ExitStack() as resources:
        broker = resources.enter_context(private_rabbitmq(tmp / "rabbitmq"))
        database_url = resources.enter_context(
            temporary_postgres_database("pixtools_dur_rabbitmq")
        )
        s3 = resources.enter_context(moto_s3_server())
        overrides = base_overrides(tmp, database_url, broker.url, s3)
        overrides.update(
            {
                "WORKER_CONCURRENCY": "2",
                "TEST_OPERATION_DELAY_SECONDS": "0.2",
                "RECOVERY_INTERVAL_SECONDS": "2",
            }
        )
        started = resources.enter_context(durability_stack(tmp, overrides))
        started.broker = broker  # type: ignore[attr-defined]
        yield started


def test_rabbitmq_restart_loses_no_job(stack: Stack) -> None:
    broker = stack.broker  # type: ignore[attr-defined]
    stack.start_worker()
    stack.start_beat()
    job_ids = [stack.submit(["png"]) for _ in range(JOBS_BEFORE_RESTART)]
    stack.wait_for_operation(job_ids[3], "png", "SUCCEEDED")

    broker.stop_app()
    try:
        job_ids += [stack.submit(["png"]) for _ in range(JOBS_DURING_OUTAGE)]
    finally:
        broker.start_app()
    jobs = stack.wait_for_jobs(job_ids, timeout=240)

    statuses = [job.status for job in jobs.values()]
    assert statuses == ["COMPLETED"] * (JOBS_BEFORE_RESTART + JOBS_DURING_OUTAGE)
    for job_id, job in jobs.items():
        assert stored_keys(job_id)["outputs"] == [f"{job_id}/png.png"]
        assert job.archive_key is not None
