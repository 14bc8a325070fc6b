"""broker migrate-queues against a throwaway RabbitMQ virtual host."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer, Queue

from pixtools_shared.broker_topology import work_queue
from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.settings import Settings
from pixtools_shared.testing import rabbitmqctl_available, temporary_rabbitmq_vhost
from pixtools_worker_standard.broker_admin import migrate_queues

pytestmark = pytest.mark.skipif(
    not rabbitmqctl_available(), reason="rabbitmqctl is not installed"
)


def _message_count(url: str, name: str, settings: Settings) -> int:
    """Declare the queue as the app does (raises if its arguments differ)."""
    with Connection(url) as connection:
        queue = work_queue(name, settings)(connection.channel())
        _name, count, _consumers = queue.queue_declare()
        return int(count)


def test_classic_queues_migrated_with_messages(tmp_path: Path) -> None:
    with temporary_rabbitmq_vhost("pixtools_unit_migrate") as url:
        with Connection(url) as connection:
            channel = connection.channel()
            exchange = Exchange("pixtools", "direct", durable=True)
            for name in ("standard", "ml", "webhooks"):
                Queue(name, exchange, routing_key=name, durable=True)(channel).declare()
            producer = Producer(channel)
            for number in range(3):
                producer.publish(
                    {"number": number},
                    exchange="",
                    routing_key="standard",
                    headers={"id": f"message-{number}"},
                    delivery_mode=2,
                )
        settings = Settings(DATA_DIR=tmp_path, BROKER_URL=url)
        app = create_celery_app(settings)
        try:
            first = migrate_queues(app, settings)
            second = migrate_queues(app, settings)
        finally:
            app.close()

        assert [(r.name, r.migrated, r.messages) for r in first] == [
            ("standard", True, 3),
            ("ml", True, 0),
            ("webhooks", True, 0),
            ("dead_letters", False, 0),
        ]
        assert all(not result.migrated for result in second)
        assert _message_count(url, "standard", settings) == 3
