from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu import Exchange, Queue

from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.operations import OPERATIONS as OPERATION_SPECS
from pixtools_shared.operations import OperationName
from pixtools_shared.settings import Settings
from pixtools_shared.tasks import (
    CONVERT_TASK,
    DENOISE_TASK,
    EXTRACT_METADATA_TASK,
    FINALIZE_JOB_TASK,
    OPERATION_TASKS,
    TASK_QUEUES,
    UnknownOperationError,
    dispatch_finalize,
    dispatch_operation,
    dispatch_webhook,
    queue_for_operation,
    task_for_operation,
)
from pixtools_shared.testing import rabbitmqctl_available, temporary_rabbitmq_vhost


def test_every_operation_has_task() -> None:
    assert set(OPERATION_TASKS) == {name.value for name in OperationName}
    for name, spec in OPERATION_SPECS.items():
        assert queue_for_operation(name.value) == spec.queue


def test_task_names_fixed() -> None:
    assert task_for_operation("avif") == CONVERT_TASK == "pixtools.convert"
    assert task_for_operation("metadata") == EXTRACT_METADATA_TASK
    assert task_for_operation("denoise") == DENOISE_TASK == "pixtools.denoise"
    assert TASK_QUEUES[FINALIZE_JOB_TASK] == "standard"


def test_unknown_operation_rejected() -> None:
    with pytest.raises(UnknownOperationError, match="'gif'"):
        task_for_operation("gif")


def test_app_configuration(tmp_path: Path) -> None:
    app = create_celery_app(Settings(DATA_DIR=tmp_path))
    conf = app.conf

    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert {queue.name for queue in conf.task_queues} == {
        "standard",
        "ml",
        "webhooks",
        "dead_letters",
    }
    assert all(queue.queue_arguments is None for queue in conf.task_queues)
    assert conf.task_routes[DENOISE_TASK] == {"queue": "ml", "routing_key": "ml"}
    assert conf.task_annotations[DENOISE_TASK]["time_limit"] == 660
    assert conf.task_annotations[CONVERT_TASK]["soft_time_limit"] == 120
    options = conf.broker_transport_options
    assert options["data_folder_in"] == options["data_folder_out"]
    assert options["polling_interval"] == 0.1
    assert Path(options["data_folder_in"]).is_dir()
    assert Path(options["processed_folder"]).is_dir()
    assert set(conf.beat_schedule) == {
        "purge-expired-jobs",
        "recover-stalled-operations",
        "relay-outbox",
        "count-dead-letters",
    }
    assert conf.worker_consumer == "pixtools_shared.broker_topology:Consumer"


def test_amqp_queues_are_quorum_with_dead_letters(tmp_path: Path) -> None:
    settings = Settings(
        DATA_DIR=tmp_path, BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"
    )
    conf = create_celery_app(settings).conf
    queues = {queue.name: queue for queue in conf.task_queues}

    for name in ("standard", "ml", "webhooks"):
        assert queues[name].queue_arguments == {
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.BROKER_DELIVERY_LIMIT,
            "x-dead-letter-exchange": "pixtools.dead-letter",
            "x-dead-letter-routing-key": "dead_letters",
        }
    assert queues["dead_letters"].queue_arguments == {"x-queue-type": "quorum"}
    assert queues["dead_letters"].exchange.name == "pixtools.dead-letter"
    assert conf.broker_transport_options["confirm_publish"] is True
    assert conf.broker_transport_options["max_retries"] == 1


def test_classic_queues_keep_dead_letter_exchange(tmp_path: Path) -> None:
    settings = Settings(
        DATA_DIR=tmp_path,
        BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
        BROKER_QUEUE_TYPE="classic",
    )
    queues = {q.name: q for q in create_celery_app(settings).conf.task_queues}

    assert queues["standard"].queue_arguments == {
        "x-dead-letter-exchange": "pixtools.dead-letter",
        "x-dead-letter-routing-key": "dead_letters",
    }
    assert queues["dead_letters"].queue_arguments is None


def test_consumer_drops_delayed_delivery_step() -> None:
    from pixtools_shared.broker_topology import Consumer

    steps = Consumer.Blueprint.default_steps

    assert not any(step.endswith(":DelayedDelivery") for step in steps)
    assert steps[-1] == "pixtools_shared.broker_topology:DeadLetterTopology"
    assert "celery.worker.consumer.tasks:Tasks" in steps


def _filesystem_messages(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    messages = []
    for path in sorted(settings.broker_folder.iterdir()):
        payload = json.loads(path.read_text())
        queue = path.name.split(".")[-2]
        messages.append((queue, payload))
    return messages


def _decode_body(payload: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payload["body"]))


@pytest.fixture
def filesystem_app(tmp_path: Path) -> Iterator[tuple[Celery, Settings]]:
    settings = Settings(DATA_DIR=tmp_path)
    app = create_celery_app(settings)
    yield app, settings
    app.close()


def test_dispatch_writes_to_right_queue(
    filesystem_app: tuple[Celery, Settings],
) -> None:
    app, settings = filesystem_app
    job_id = str(uuid.uuid4())

    task_id = dispatch_operation(app, job_id, "denoise")
    dispatch_operation(app, job_id, "webp")
    dispatch_finalize(app, job_id)
    dispatch_webhook(app, job_id)

    messages = _filesystem_messages(settings)
    by_task = {
        payload["headers"]["task"]: (queue, payload) for queue, payload in messages
    }
    assert len(messages) == 4
    assert by_task[DENOISE_TASK][0] == "ml"
    assert by_task[DENOISE_TASK][1]["headers"]["id"] == task_id
    assert _decode_body(by_task[DENOISE_TASK][1])[0] == [job_id, "denoise"]
    assert by_task[CONVERT_TASK][0] == "standard"
    assert _decode_body(by_task[CONVERT_TASK][1])[0] == [job_id, "webp"]
    assert by_task[FINALIZE_JOB_TASK][0] == "standard"
    assert by_task["pixtools.deliver_webhook"][0] == "webhooks"
    assert all(p["content-type"] == "application/json" for _, p in messages)


@pytest.mark.skipif(not rabbitmqctl_available(), reason="rabbitmqctl not installed")
def test_dispatch_over_rabbitmq(tmp_path: Path) -> None:
    with temporary_rabbitmq_vhost() as broker_url:
        settings = Settings(DATA_DIR=tmp_path, BROKER_URL=broker_url)
        app = create_celery_app(settings)
        job_id = str(uuid.uuid4())
        try:
            dispatch_operation(app, job_id, "denoise")
            dispatch_operation(app, job_id, "metadata")

            exchange = Exchange("pixtools", type="direct", durable=True)
            with app.connection_for_read() as connection:
                channel = connection.channel()
                ml = Queue("ml", exchange, routing_key="ml")(channel).get(no_ack=True)
                standard = Queue("standard", exchange, routing_key="standard")(
                    channel
                ).get(no_ack=True)
        finally:
            app.close()

    assert ml is not None
    assert ml.headers["task"] == DENOISE_TASK
    assert ml.decode()[0] == [job_id, "denoise"]
    assert standard is not None
    assert standard.headers["task"] == EXTRACT_METADATA_TASK
    assert standard.properties["delivery_mode"] == 2


def test_filesystem_consumer_skips_temp_files(
    filesystem_app: tuple[Celery, Settings],
) -> None:
    app, settings = filesystem_app
    (settings.broker_folder / ".tmp-partial").write_bytes(b'{"body": "trunc')
    job_id = str(uuid.uuid4())
    dispatch_operation(app, job_id, "png")

    exchange = Exchange("pixtools", type="direct", durable=True)
    with app.connection_for_read() as connection:
        queue = Queue("standard", exchange, routing_key="standard")
        message = queue(connection.channel()).get(no_ack=True)

    assert app.conf.broker_url == "pixtoolsfs://localhost/"
    assert message is not None
    assert message.headers["task"] == CONVERT_TASK
    assert message.decode()[0] == [job_id, "png"]
    assert [path.name for path in settings.broker_folder.iterdir()] == [".tmp-partial"]
