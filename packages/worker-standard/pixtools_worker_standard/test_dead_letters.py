"""Dead letters on the filesystem broker: copy, list, count, replay, reopen."""

from __future__ import annotations

import json

import pytest
from celery import Celery

from pixtools_shared import jobs
from pixtools_shared.db.session import session_scope
from pixtools_shared.metrics import DEAD_LETTERS
from pixtools_shared.settings import Settings
from pixtools_worker_standard.admin_cli import run as run_cli
from pixtools_worker_standard.dead_letters import (
    count_dead_letters,
    list_dead_letters,
    reopen_operation,
    replay_dead_letters,
)
from pixtools_worker_standard.finalize import finalize_job
from pixtools_worker_standard.operation_tasks import convert
from pixtools_worker_standard.testkit import (
    load_job,
    make_image,
    sent_tasks,
    submit_job,
)


def _poisoned_job(settings: Settings) -> str:
    """A job whose png operation was interrupted OPERATION_MAX_ATTEMPTS times."""
    job_id = submit_job(settings, ["png"], make_image())
    with session_scope() as session:
        for _ in range(settings.OPERATION_MAX_ATTEMPTS):
            jobs.mark_operation_running(session, job_id, "png")
    convert.apply(args=[job_id, "png"], task_id=f"convert-{job_id}").get()
    finalize_job.apply(args=[job_id]).get()
    return job_id


def test_interrupted_operation_lands_in_dead_letters(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = _poisoned_job(configured_env)

    letters = list_dead_letters(worker_app, configured_env)

    assert len(letters) == 1
    [letter] = letters
    assert letter.task_id == f"convert-{job_id}"
    assert letter.task_name == "pixtools.convert"
    assert letter.args == [job_id, "png"]
    assert letter.reason == "operation-interrupted"
    job = load_job(job_id)
    assert job.status == "FAILED"
    assert job.operations[0].error_code == "operation-interrupted"


def test_listing_leaves_letters_in_queue(
    configured_env: Settings, worker_app: Celery
) -> None:
    _poisoned_job(configured_env)

    first = list_dead_letters(worker_app, configured_env)
    second = list_dead_letters(worker_app, configured_env)

    assert [letter.task_id for letter in first] == [letter.task_id for letter in second]
    assert count_dead_letters(worker_app, configured_env) == 1
    assert DEAD_LETTERS._value.get() == 1


def test_replay_reopens_and_completes_job(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = _poisoned_job(configured_env)

    results = replay_dead_letters(
        worker_app, configured_env, task_id=f"convert-{job_id}"
    )

    assert [(r.target_queue, r.reopened) for r in results] == [("standard", True)]
    job = load_job(job_id)
    assert (job.status, job.reopen_count, job.finished_at) == ("RUNNING", 1, None)
    operation = job.operations[0]
    assert (operation.status, operation.interruptions) == ("QUEUED", 0)
    assert operation.error_code is None
    assert count_dead_letters(worker_app, configured_env) == 0
    standard = [
        (task.name, task.args)
        for task in sent_tasks(configured_env)
        if task.queue == "standard"
    ]
    assert ("pixtools.convert", [job_id, "png"]) in standard

    assert convert.apply(args=[job_id, "png"]).get() == "succeeded"
    assert finalize_job.apply(args=[job_id]).get() == "COMPLETED"
    assert load_job(job_id).error_message is None


def test_reopen_refuses_input_errors(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png"], b"not an image")
    convert.apply(args=[job_id, "png"]).get()
    finalize_job.apply(args=[job_id]).get()

    with session_scope() as session:
        reopened = reopen_operation(session, job_id, "png", settings=configured_env)

    assert reopened is False
    job = load_job(job_id)
    assert (job.status, job.operations[0].error_code) == (
        "FAILED",
        "unsupported-format",
    )


def test_cli_lists_and_replays(
    configured_env: Settings, worker_app: Celery, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = _poisoned_job(configured_env)

    assert run_cli(["dead-letters", "list", "--json"], configured_env) == 0
    # structlog's default output (unconfigured in tests) shares stdout.
    output = capsys.readouterr().out.splitlines()
    listed = [json.loads(line) for line in output if line.startswith('{"task_id"')]
    assert [(entry["task"], entry["args"]) for entry in listed] == [
        ("pixtools.convert", [job_id, "png"])
    ]
    assert run_cli(["dead-letters", "replay", "no-such-id"], configured_env) == 2
    assert run_cli(["dead-letters", "replay", "--all"], configured_env) == 0

    assert load_job(job_id).status == "RUNNING"
    assert count_dead_letters(worker_app, configured_env) == 0
