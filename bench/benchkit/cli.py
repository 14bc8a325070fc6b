"""Command-line options shared by every benchmark script."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchkit.machine import describe_machine
from benchkit.report import default_output_dir


def build_parser(scenario: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"bench/{scenario}.py", description=description
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny counts and sizes that finish in seconds (checks that it works)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help=f"folder for results.json, results.md and plots "
        f"(default bench/results/{scenario})",
    )
    return parser


def output_dir(arguments: argparse.Namespace, scenario: str) -> Path:
    folder: Path = arguments.output_dir or default_output_dir(scenario)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_header(scenario: str, arguments: argparse.Namespace) -> dict[str, Any]:
    """Return the fields that every results.json starts with."""
    return {
        "scenario": scenario,
        "smoke": bool(arguments.smoke),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": describe_machine(),
    }


def command_line(scenario: str, argv: Sequence[str] | None) -> str:
    """Return the command that reproduces a run, for the markdown output."""
    extra = " ".join(sys.argv[1:] if argv is None else argv)
    return f"python bench/{scenario}.py {extra}".strip()


def configure_bench_logging() -> None:
    """Log the way PixTools services do, at INFO, so debug lines stay quiet."""
    from pixtools_shared.logging_setup import configure_logging
    from pixtools_shared.settings import Settings

    configure_logging(Settings(LOG_LEVEL="INFO"))
    # One line per health-check poll would bury the benchmark's own lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_footer() -> dict[str, Any]:
    """Return the fields recorded when a run ends (load average, end time)."""
    return {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_end_1m": round(os.getloadavg()[0], 2),
    }
