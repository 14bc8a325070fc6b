"""Command line of the standard worker.

``python -m pixtools_worker_standard worker [celery worker options]`` consumes the
standard and webhooks queues; ``python -m pixtools_worker_standard beat`` runs the
periodic maintenance tasks. Neither migrates the database: both wait until the
API or the launcher has migrated it (SCHEMA_WAIT_SECONDS).

Operator commands (see admin_cli): ``dead-letters list``, ``dead-letters replay
(TASK_ID | --all)`` and ``broker migrate-queues``.

On SIGTERM the worker stops fetching messages and lets running tasks finish for
WORKER_SHUTDOWN_GRACE_SECONDS; then it hands the rest back to the broker (see
pixtools_shared.shutdown).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import structlog
from celery import signals

from pixtools_shared.db.migrate import SchemaNotReadyError, wait_for_schema
from pixtools_shared.logging_setup import configure_logging
from pixtools_shared.observability.worker_metrics import serve_worker_metrics
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.tasks import QUEUE_STANDARD, QUEUE_WEBHOOKS

log = structlog.get_logger(__name__)


@signals.setup_logging.connect
def _keep_our_logging(**_kwargs: Any) -> None:
    # A receiver on this signal stops Celery from installing its own handlers.
    configure_logging(get_settings())


def worker_argv(settings: Settings, extra: Sequence[str]) -> list[str]:
    argv = [
        "worker",
        f"--queues={QUEUE_STANDARD},{QUEUE_WEBHOOKS}",
        f"--concurrency={settings.WORKER_CONCURRENCY}",
        f"--loglevel={settings.LOG_LEVEL.upper()}",
        "--hostname=standard@%h",
    ]
    if settings.uses_filesystem_broker:
        # Gossip and mingle need broadcast messages between workers.
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return [*argv, *extra]


def beat_argv(settings: Settings, extra: Sequence[str]) -> list[str]:
    return [
        "beat",
        f"--schedule={settings.beat_schedule_file}",
        f"--loglevel={settings.LOG_LEVEL.upper()}",
        *extra,
    ]


ADMIN_COMMANDS = frozenset({"dead-letters", "broker"})


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in ADMIN_COMMANDS:
        from pixtools_worker_standard import admin_cli

        settings = get_settings()
        configure_logging(settings)
        return admin_cli.run(arguments, settings)

    parser = argparse.ArgumentParser(prog="python -m pixtools_worker_standard")
    parser.add_argument("command", choices=["worker", "beat", *sorted(ADMIN_COMMANDS)])
    args, extra = parser.parse_known_args(arguments)

    settings = get_settings()
    configure_logging(settings)
    if args.command == "worker":
        # Before the task modules are imported: they create the metrics.
        serve_worker_metrics("standard", settings)
    try:
        wait_for_schema(settings.database_url, settings.SCHEMA_WAIT_SECONDS)
    except SchemaNotReadyError as exc:
        log.error("worker_start_failed", command=args.command, error=str(exc))
        return 1

    # Imported after logging is set up: creating the app reads the settings. The
    # task modules are imported by name too, so that packaging tools that follow
    # imports (Pants) see them; Celery's `include` alone is a list of strings.
    from pixtools_worker_standard import (  # noqa: F401
        dead_letters,
        finalize,
        operation_tasks,
        purge,
        recovery,
        relay,
        webhooks,
    )
    from pixtools_worker_standard.app import app

    settings.beat_schedule_file.parent.mkdir(parents=True, exist_ok=True)
    if args.command == "worker":
        command = worker_argv(settings, extra)
    else:
        command = beat_argv(settings, extra)
    log.info("celery_starting", command=args.command, argv=command)
    app.start(command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
