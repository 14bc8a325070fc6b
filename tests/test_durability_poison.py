"""A poison input that kills its worker on every delivery.

The convert task of a job whose source file is listed in TEST_POISON_FILE ends
its pool process with os._exit(1). Celery rejects the lost message back to the
quorum queue (reject_on_worker_lost), so it comes back: OPERATION_MAX_ATTEMPTS
runs die, the next one fails the operation with ``operation-interrupted`` and
rejects the message into the dead-letter queue. Other jobs keep flowing, and a
replay after the fault is gone runs the operation to completion.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from durability_fixtures import servers_stack
from durability_platform import Stack, load_job
from e2e_processes import child_environment

from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.metrics import DEAD_LETTERS
from pixtools_worker_standard.dead_letters import count_dead_letters, list_dead_letters

POISON_NAME = "poison.png"


@pytest.fixture(scope="module")
def poison_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("poison") / "poison-names.txt"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, poison_file: Path
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("durability-poison")
    extra = {"TEST_POISON_FILE": str(poison_file)}
    with servers_stack(tmp, "pixtools_dur_poison", extra) as started:
        yield started


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    # The argv is this interpreter running the worker's own command line.
    return subprocess.run(
        [sys.executable, "-m", "pixtools_worker_standard", *args],
        env=child_environment(stack.overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_poison_dead_lettered_then_replayed(stack: Stack, poison_file: Path) -> None:
    poison_file.write_text(POISON_NAME + "\n")
    stack.start_worker()
    settings = stack.settings

    poison_id = stack.submit(["png"], filename=POISON_NAME)
    healthy_ids = [stack.submit(["png", "jpg"]) for _ in range(2)]
    jobs = stack.wait_for_jobs([poison_id, *healthy_ids], timeout=180)

    poisoned = jobs[poison_id]
    assert poisoned.status == "FAILED"
    [operation] = poisoned.operations
    assert operation.error_code == "operation-interrupted"
    assert operation.error_message is not None
    assert "moved to the dead-letter queue" in operation.error_message
    runs = settings.OPERATION_MAX_ATTEMPTS + 1
    assert (operation.attempts, operation.interruptions) == (runs, runs - 1)
    for job_id in healthy_ids:
        assert jobs[job_id].status == "COMPLETED"
    worker_log = stack.services[0].log_tail(lines=100_000)
    assert worker_log.count("test_poison_exit") == settings.OPERATION_MAX_ATTEMPTS

    app = create_celery_app(settings)
    try:
        letters = list_dead_letters(app, settings)
        assert [(letter.task_name, letter.args) for letter in letters] == [
            ("pixtools.convert", [poison_id, "png"])
        ]
        assert (letters[0].reason, letters[0].source_queue) == ("rejected", "standard")
        assert count_dead_letters(app, settings) == 1
        assert DEAD_LETTERS._value.get() == 1

        listed = _cli(stack, "dead-letters", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert poison_id in listed.stdout

        poison_file.unlink()
        replayed = _cli(stack, "dead-letters", "replay", "--all")
        assert replayed.returncode == 0, replayed.stderr
        assert "operation reopened" in replayed.stdout

        job = stack.wait_for_jobs([poison_id], timeout=120)[poison_id]
        assert job.status == "COMPLETED", job.error_message
        assert job.reopen_count == 1
        assert job.operations[0].error_code is None
        assert count_dead_letters(app, settings) == 0
    finally:
        app.close()
    assert load_job(poison_id).archive_key is not None
