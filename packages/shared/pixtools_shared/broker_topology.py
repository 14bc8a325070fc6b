"""Exchanges and queues of the broker, and the dead-letter queue behind them.

On RabbitMQ the work queues (standard, ml, webhooks) are quorum queues by default
(BROKER_QUEUE_TYPE). Each one dead-letters into the ``pixtools.dead-letter``
exchange, which routes to the ``dead_letters`` queue:

- a message a task rejects (``Reject(requeue=False)``: an operation that stopped
  its worker OPERATION_MAX_ATTEMPTS times);
- a message delivered more than BROKER_DELIVERY_LIMIT times again (quorum only:
  each worker that took it died before acknowledging it);
- a message whose TTL expired, when an operator sets one by policy.

RabbitMQ drops dead-lettered messages whose exchange does not exist, and a worker
only declares the queues it consumes. So the dead-letter exchange and queue are
declared on every consumer connection (``Consumer`` below, the worker's consumer
class) and by the outbox relay before its first publish.

The filesystem broker has no dead-lettering: there a task publishes the message
to the ``dead_letters`` queue itself (see pipeline).
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import bootsteps
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu import Connection, Exchange, Queue

from pixtools_shared.settings import Settings
from pixtools_shared.tasks import QUEUES

log = structlog.get_logger(__name__)

TASK_EXCHANGE = "pixtools"
DEAD_LETTER_EXCHANGE = "pixtools.dead-letter"
DEAD_LETTER_QUEUE = "dead_letters"


def task_exchange() -> Exchange:
    return Exchange(TASK_EXCHANGE, type="direct", durable=True)


def dead_letter_exchange() -> Exchange:
    return Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True)


def uses_amqp(settings: Settings) -> bool:
    return settings.BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://"))


def work_queue_arguments(settings: Settings) -> dict[str, Any]:
    """Queue arguments of a work queue; empty for the filesystem broker."""
    if not uses_amqp(settings):
        return {}
    arguments: dict[str, Any] = {
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": DEAD_LETTER_QUEUE,
    }
    if settings.BROKER_QUEUE_TYPE == "quorum":
        arguments["x-queue-type"] = "quorum"
        arguments["x-delivery-limit"] = settings.BROKER_DELIVERY_LIMIT
    return arguments


def work_queue(name: str, settings: Settings) -> Queue:
    arguments = work_queue_arguments(settings)
    return Queue(
        name,
        task_exchange(),
        routing_key=name,
        durable=True,
        queue_arguments=arguments or None,
    )


def dead_letter_queue(settings: Settings) -> Queue:
    """The queue that collects dead letters (no delivery limit, no DLX itself)."""
    if not uses_amqp(settings):
        return Queue(
            DEAD_LETTER_QUEUE,
            task_exchange(),
            routing_key=DEAD_LETTER_QUEUE,
            durable=True,
        )
    arguments = (
        {"x-queue-type": "quorum"} if settings.BROKER_QUEUE_TYPE == "quorum" else None
    )
    return Queue(
        DEAD_LETTER_QUEUE,
        dead_letter_exchange(),
        routing_key=DEAD_LETTER_QUEUE,
        durable=True,
        queue_arguments=arguments,
    )


def task_queues(settings: Settings) -> list[Queue]:
    """Every queue of the app: the work queues, then the dead-letter queue."""
    return [work_queue(name, settings) for name in QUEUES] + [
        dead_letter_queue(settings)
    ]


def declare_dead_letter_topology(connection: Connection, settings: Settings) -> None:
    """Declare the dead-letter exchange and queue (RabbitMQ only; idempotent)."""
    if not uses_amqp(settings):
        return
    channel = connection.channel()
    try:
        dead_letter_exchange()(channel).declare()
        dead_letter_queue(settings)(channel).declare()
    finally:
        channel.close()


class DeadLetterTopology(bootsteps.StartStopStep):
    """Consumer step: declare the dead-letter topology on each (re)connection."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, c: Any) -> None:
        from pixtools_shared.settings import get_settings

        settings = get_settings()
        try:
            declare_dead_letter_topology(c.connection, settings)
        except Exception as exc:
            # The relay and the dead-letter beat task declare it again later.
            log.error("dead_letter_topology_declare_failed", exc_info=exc)


class Consumer(CeleryConsumer):
    """Celery's consumer without native delayed delivery, plus DeadLetterTopology.

    Celery (5.5 and later) adds a delayed-delivery step whenever it sees quorum
    queues: it declares 28 extra quorum queues and binds the work queues to a
    topic exchange. PixTools never sends a countdown or ETA (retries wait in the
    task or in the outbox), so that step would only load the broker.
    """

    class Blueprint(CeleryConsumer.Blueprint):
        default_steps = [
            step
            for step in CeleryConsumer.Blueprint.default_steps
            if not step.endswith(":DelayedDelivery")
        ] + [f"{__name__}:DeadLetterTopology"]
