"""The Celery app of the ML worker, with the denoise task registered."""

from __future__ import annotations

from celery import Celery

from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.observability.task_signals import install_worker_observability
from pixtools_shared.settings import Settings

TASK_MODULES = ("pixtools_worker_ml.tasks",)


def create_app(settings: Settings | None = None) -> Celery:
    return create_celery_app(settings, include=TASK_MODULES, main="pixtools_worker_ml")


app = create_app()
install_worker_observability("pixtools-worker-ml")
