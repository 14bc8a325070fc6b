"""Operator commands: ``dead-letters list|replay`` and ``broker migrate-queues``.

Run through ``python -m pixtools_worker_standard``. Each command prints one
line per item (``--json`` prints JSON instead) and exits 0 on success, 1 when
the broker or the database cannot be reached, 2 when nothing matched.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import structlog
from celery import Celery

from pixtools_shared.settings import Settings

log = structlog.get_logger(__name__)

EXIT_UNAVAILABLE = 1
EXIT_NOT_FOUND = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pixtools_worker_standard")
    commands = parser.add_subparsers(dest="command", required=True)

    letters = commands.add_parser(
        "dead-letters", help="list or replay messages of the dead-letter queue"
    )
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="print every dead letter")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    replay = actions.add_parser(
        "replay", help="publish dead letters back to their queues"
    )
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("task_id", nargs="?", help="task id of one dead letter")
    target.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument("--json", action="store_true", help="print JSON lines")

    broker = commands.add_parser("broker", help="RabbitMQ queue maintenance")
    broker_actions = broker.add_subparsers(dest="action", required=True)
    broker_actions.add_parser(
        "migrate-queues",
        help="re-declare queues whose type or arguments changed, keeping messages",
    )
    return parser


def run(argv: Sequence[str], settings: Settings) -> int:
    """Parse ``argv`` (without the program name) and run the command."""
    args = build_parser().parse_args(list(argv))
    from pixtools_worker_standard.app import app

    try:
        if args.command == "dead-letters" and args.action == "list":
            return _list(app, settings, as_json=args.json)
        if args.command == "dead-letters":
            return _replay(app, settings, None if args.all else args.task_id, args.json)
        return _migrate(app, settings)
    except OSError as exc:
        # kombu raises OSError subclasses (ConnectionRefusedError...) and its
        # OperationalError for an unreachable broker.
        print(f"error: the broker is unreachable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except Exception as exc:
        from kombu.exceptions import OperationalError

        if isinstance(exc, OperationalError):
            print(f"error: the broker is unreachable: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        raise


def _list(app: Celery, settings: Settings, *, as_json: bool) -> int:
    from pixtools_worker_standard.dead_letters import list_dead_letters

    letters = list_dead_letters(app, settings)
    for letter in letters:
        if as_json:
            print(json.dumps(letter.as_dict()))
        else:
            print(
                f"{letter.task_id}  {letter.task_name}  {json.dumps(letter.args)}  "
                f"queue={letter.source_queue}  reason={letter.reason}  "
                f"at={letter.dead_lettered_at}"
            )
    if not as_json:
        print(f"{len(letters)} dead letter(s)")
    return 0


def _replay(app: Celery, settings: Settings, task_id: str | None, as_json: bool) -> int:
    from pixtools_worker_standard.dead_letters import replay_dead_letters

    results = replay_dead_letters(app, settings, task_id=task_id)
    for result in results:
        if as_json:
            print(
                json.dumps(
                    {
                        **result.letter.as_dict(),
                        "replayed_to": result.target_queue,
                        "reopened": result.reopened,
                    }
                )
            )
        else:
            note = " (operation reopened)" if result.reopened else ""
            print(
                f"replayed {result.letter.task_id} {result.letter.task_name} "
                f"to {result.target_queue}{note}"
            )
    if task_id is not None and not results:
        print(f"error: no dead letter with task id {task_id!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    return 0


def _migrate(app: Celery, settings: Settings) -> int:
    from pixtools_worker_standard.broker_admin import migrate_queues

    results = migrate_queues(app, settings)
    if not results:
        print("the broker is not RabbitMQ; nothing to migrate")
    for result in results:
        state = "migrated" if result.migrated else "up to date"
        print(f"{result.name}: {state} ({result.messages} messages moved)")
    return 0
