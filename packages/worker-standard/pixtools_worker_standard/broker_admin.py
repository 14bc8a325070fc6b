"""``broker migrate-queues``: re-declare RabbitMQ queues whose arguments changed.

RabbitMQ refuses to declare an existing queue with other arguments
(PRECONDITION_FAILED), for example a classic queue named ``standard`` left by an
older release, now that PixTools declares quorum queues, or a changed
BROKER_DELIVERY_LIMIT. This command moves the messages of each such queue to a
temporary quorum queue, deletes the queue, declares it again with the current
arguments and moves the messages back. Stop the API and every worker first:
a process of the old release would declare the old queue again.

Running it again after an interruption finishes the move, because messages
still in the temporary queue are moved back first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from amqp.exceptions import (  # type: ignore[import-untyped]
    NotFound,
    PreconditionFailed,
)
from celery import Celery
from kombu import Connection, Exchange, Producer, Queue

from pixtools_shared.broker_topology import (
    dead_letter_exchange,
    dead_letter_queue,
    declare_dead_letter_topology,
    uses_amqp,
    work_queue,
)
from pixtools_shared.settings import Settings
from pixtools_shared.tasks import QUEUES

log = structlog.get_logger(__name__)

MIGRATION_SUFFIX = ".migrating"


@dataclass(frozen=True)
class QueueMigration:
    """Result for one queue: whether it was migrated and how many messages moved."""

    name: str
    migrated: bool
    messages: int


def _declares_cleanly(connection: Connection, queue: Queue) -> bool:
    channel = connection.channel()
    try:
        queue(channel).declare()
    except PreconditionFailed:
        return False
    finally:
        try:
            channel.close()
        except Exception as exc:
            # The broker already closed the channel after the failed declare.
            log.debug("channel_close_failed", error=str(exc))
    return True


def _move(connection: Connection, source: str, target: str) -> int:
    """Move every message of queue ``source`` to queue ``target``; return count."""
    moved = 0
    channel = connection.channel()
    try:
        producer = Producer(channel)
        reader = Queue(source, no_declare=True)(channel)
        while (message := reader.get(no_ack=False)) is not None:
            extra: dict[str, Any] = {
                name: message.properties[name]
                for name in ("correlation_id", "reply_to", "priority", "expiration")
                if message.properties.get(name) is not None
            }
            producer.publish(
                message.body,
                exchange=Exchange(""),
                routing_key=target,
                headers=dict(message.headers or {}),
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
                **extra,
            )
            message.ack()
            moved += 1
    except NotFound:
        # The source queue does not exist (nothing to move).
        return moved
    finally:
        try:
            channel.close()
        except Exception as exc:
            log.debug("channel_close_failed", error=str(exc))
    return moved


def _migrate(connection: Connection, queue: Queue, settings: Settings) -> int:
    temporary = Queue(
        queue.name + MIGRATION_SUFFIX,
        durable=True,
        queue_arguments=(
            {"x-queue-type": "quorum"}
            if settings.BROKER_QUEUE_TYPE == "quorum"
            else None
        ),
    )
    channel = connection.channel()
    try:
        temporary(channel).declare()
        moved = _move(connection, queue.name, temporary.name)
        channel.queue_delete(queue.name)
        queue(channel).declare()
    finally:
        channel.close()
    _move(connection, temporary.name, queue.name)
    _delete_if_empty(connection, temporary.name)
    return moved


def _delete_if_empty(connection: Connection, name: str) -> None:
    # Quorum queues reject queue.delete with if-empty, so count first.
    channel = connection.channel()
    try:
        _name, count, _consumers = channel.queue_declare(name, passive=True)
        if count == 0:
            channel.queue_delete(name)
    except NotFound:
        return
    finally:
        try:
            channel.close()
        except Exception as exc:
            log.debug("channel_close_failed", error=str(exc))


def migrate_queues(celery_app: Celery, settings: Settings) -> list[QueueMigration]:
    """Bring every PixTools queue to its current arguments (RabbitMQ only)."""
    if not uses_amqp(settings):
        return []
    queues = [work_queue(name, settings) for name in QUEUES] + [
        dead_letter_queue(settings)
    ]
    results = []
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
        _declare_dead_letter_exchange(connection)
        for queue in queues:
            if _declares_cleanly(connection, queue):
                # Messages left in the temporary queue by an interrupted run.
                temporary = queue.name + MIGRATION_SUFFIX
                leftover = _move(connection, temporary, queue.name)
                _delete_if_empty(connection, temporary)
                results.append(QueueMigration(queue.name, leftover > 0, leftover))
                continue
            moved = _migrate(connection, queue, settings)
            log.warning("queue_migrated", queue=queue.name, messages=moved)
            results.append(QueueMigration(queue.name, True, moved))
        declare_dead_letter_topology(connection, settings)
    return results


def _declare_dead_letter_exchange(connection: Connection) -> None:
    # Only the exchange: the dead-letter queue itself may need migrating.
    channel = connection.channel()
    try:
        dead_letter_exchange()(channel).declare()
    finally:
        channel.close()
