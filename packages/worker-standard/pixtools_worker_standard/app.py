"""The Celery app of the standard worker, with every standard task registered."""

from __future__ import annotations

from celery import Celery

from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.observability.task_signals import install_worker_observability
from pixtools_shared.settings import Settings

TASK_MODULES = (
    "pixtools_worker_standard.operation_tasks",
    "pixtools_worker_standard.finalize",
    "pixtools_worker_standard.webhooks",
    "pixtools_worker_standard.purge",
    "pixtools_worker_standard.recovery",
    "pixtools_worker_standard.relay",
    "pixtools_worker_standard.dead_letters",
)


def create_app(settings: Settings | None = None) -> Celery:
    return create_celery_app(
        settings, include=TASK_MODULES, main="pixtools_worker_standard"
    )


app = create_app()
install_worker_observability("pixtools-worker-standard")
