"""Entry point of the `pixtools` command (`python -m pixtools_cli`)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TextIO

import structlog

from pixtools_cli.cli import parse_arguments
from pixtools_cli.client import PixToolsClient
from pixtools_cli.commands import COMMANDS, Console
from pixtools_cli.errors import CliError
from pixtools_cli.exit_codes import ExitCode
from pixtools_cli.terminal import printable

# Exit status of a command stopped with Ctrl-C, as shells report SIGINT.
INTERRUPTED_EXIT_CODE = 130


def configure_logging(stream: TextIO, *, verbose: bool) -> None:
    """Send structlog output to stderr: warnings only, or everything when verbose."""
    level = logging.INFO if verbose else logging.WARNING
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one `pixtools` command and return its exit code."""
    console = Console(stdout or sys.stdout, stderr or sys.stderr)
    try:
        arguments = parse_arguments(argv)
    except SystemExit as exc:
        # argparse exits for --help (0) and for usage errors (ExitCode.USAGE).
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE

    configure_logging(console.stderr, verbose=arguments.verbose)
    handler = COMMANDS[arguments.command]
    try:
        with PixToolsClient(arguments.api_url, api_key=arguments.api_key) as client:
            return int(handler(arguments, client, console))
    except CliError as exc:
        console.err(f"pixtools: {printable(exc.message)}")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        console.err("pixtools: interrupted")
        return INTERRUPTED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
