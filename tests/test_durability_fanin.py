"""Fan-in exactly once: duplicate deliveries never finalize a job twice.

Every operation message is published three times: the outbox's own plus two
copies with other task ids. Finalize and webhook messages are published before
the job is ready and again after it finished. The worker runs two processes, so
duplicates really run at the same time. The job still gets one bundle, one
final transition and one webhook.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator

import pytest
from durability_fixtures import servers_stack
from durability_platform import Stack, expected_keys, load_job, stored_keys
from e2e_servers import WebhookReceiver

from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.storage import bundle_key, get_storage
from pixtools_shared.tasks import (
    DELIVER_WEBHOOK_TASK,
    FINALIZE_JOB_TASK,
    TASK_QUEUES,
    task_for_operation,
)

OPERATIONS = ["png", "webp", "metadata"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("durability-fanin")
    extra = {"WORKER_CONCURRENCY": "2", "TEST_OPERATION_DELAY_SECONDS": "0.5"}
    with servers_stack(tmp, "pixtools_dur_fanin", extra) as started:
        yield started


def _publish(app: object, task: str, args: list[str]) -> None:
    app.send_task(  # type: ignore[attr-defined]
        task, args=args, task_id=str(uuid.uuid4()), queue=TASK_QUEUES[task]
    )


def _events_for(receiver: WebhookReceiver, job_id: str) -> int:
    with receiver.condition:
        return sum(1 for event in receiver.received if job_id in json.dumps(event.body))


def test_duplicate_deliveries_finalize_once(
    stack: Stack, webhooks: WebhookReceiver
) -> None:
    stack.start_worker()
    app = create_celery_app(stack.settings)
    try:
        job_id = stack.submit(OPERATIONS, webhook_url=webhooks.url)
        _publish(app, FINALIZE_JOB_TASK, [job_id])
        for _ in range(2):
            for name in OPERATIONS:
                _publish(app, task_for_operation(name), [job_id, name])
        job = stack.wait_for_jobs([job_id])[job_id]
        assert webhooks.wait_for(job_id, timeout=60) is not None

        for task in (FINALIZE_JOB_TASK, FINALIZE_JOB_TASK, DELIVER_WEBHOOK_TASK):
            _publish(app, task, [job_id])
        # Give the late duplicates time to run (and to do nothing).
        time.sleep(3)
    finally:
        app.close()

    assert job.status == "COMPLETED", job.error_message
    assert [op.status for op in job.operations] == ["SUCCEEDED"] * 3
    assert _events_for(webhooks, job_id) == 1
    final = load_job(job_id)
    assert (final.finalize_attempts, final.webhook_attempts) == (1, 1)
    assert final.webhook_status == "DELIVERED"
    assert final.finished_at == job.finished_at
    assert stored_keys(job_id) == expected_keys(final)
    archive = get_storage().get("bundles", bundle_key(job_id))
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        assert sorted(bundle.namelist()) == ["metadata.json", "png.png", "webp.webp"]
    worker_log = stack.services[0].log_tail(lines=100_000)
    assert worker_log.count("job_finished") == 1
