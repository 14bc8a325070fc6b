"""Argument parsing of the `pixtools` command and the operation parameters.

Options that cannot work together are rejected here with exit code 1, before
any request is sent: a quality for PNG, a quality for an operation that was not
requested, a size for the metadata operation alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from pixtools_cli.errors import UsageError
from pixtools_cli.exit_codes import HELP_WIDTH, ExitCode, exit_codes_help

OPERATIONS = ("jpg", "png", "webp", "avif", "denoise", "metadata")
QUALITY_OPERATIONS = frozenset({"jpg", "webp", "avif"})
RESIZE_OPERATIONS = frozenset({"jpg", "png", "webp", "avif", "denoise"})
DENOISE_FORMATS = ("png", "jpg", "webp", "avif")

API_URL_ENV = "PIXTOOLS_API_URL"
API_KEY_ENV = "PIXTOOLS_API_KEY"
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_WAIT_TIMEOUT_SECONDS = 900.0
DEFAULT_POLL_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class QualitySpec:
    """One --quality value: for one operation, or for every lossy one (None)."""

    operation: str | None
    quality: int


class CliArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with ExitCode.USAGE (1)."""

    subcommand_parsers: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def quality_spec(text: str) -> QualitySpec:
    """Parse `70` or `webp=70` (argparse type of --quality)."""
    operation, separator, number = text.partition("=")
    if not separator:
        operation, number = "", text
    operation = operation.strip().lower()
    if operation and operation not in OPERATIONS:
        raise argparse.ArgumentTypeError(f"unknown operation {operation!r}")
    try:
        quality = int(number)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid quality {number!r}: expected a whole number 1-100"
        ) from None
    if not 1 <= quality <= 100:
        raise argparse.ArgumentTypeError(f"quality {quality} is outside 1-100")
    return QualitySpec(operation or None, quality)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def parse_operations(values: Sequence[str]) -> list[str]:
    """Split `--op jpg,webp --op avif` into names, without duplicates, in order."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in OPERATIONS:
                choices = ", ".join(OPERATIONS)
                raise UsageError(f"unknown operation {name!r}; choose from {choices}")
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError("no operation given; add --op jpg (or png, webp, ...)")
    return names


def _apply_quality(
    params: dict[str, dict[str, Any]],
    operations: Sequence[str],
    spec: QualitySpec,
    denoise_format: str,
) -> None:
    takes_quality = set(QUALITY_OPERATIONS)
    if denoise_format != "png":
        takes_quality.add("denoise")

    if spec.operation is None:
        targets = [name for name in operations if name in takes_quality]
        if not targets:
            raise UsageError(
                "--quality applies to jpg, webp, avif and lossy denoise output, "
                "and none of them is requested"
            )
    else:
        name = spec.operation
        if name not in operations:
            raise UsageError(
                f"--quality {name}={spec.quality} is for {name}, which is not "
                f"requested; add --op {name}"
            )
        if name == "png":
            raise UsageError("png is lossless and takes no quality; remove it")
        if name == "metadata":
            raise UsageError("metadata takes no quality; remove it")
        if name == "denoise" and denoise_format == "png":
            raise UsageError(
                "denoise writes png by default, which takes no quality; "
                "add --denoise-format jpg, webp or avif"
            )
        targets = [name]
    for name in targets:
        params.setdefault(name, {})["quality"] = spec.quality


def build_operation_params(
    operations: Sequence[str],
    *,
    qualities: Sequence[QualitySpec] = (),
    width: int | None = None,
    height: int | None = None,
    allow_upscale: bool = False,
    denoise_format: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Build `operation_params` of POST /api/process from the options.

    A bare quality goes to every requested lossy operation; `op=N` to one and
    wins over a bare one. Width and height go to every image operation.
    """
    params: dict[str, dict[str, Any]] = {}
    if denoise_format is not None:
        if "denoise" not in operations:
            raise UsageError("--denoise-format needs --op denoise")
        params["denoise"] = {"format": denoise_format}

    effective_format = denoise_format or "png"
    # Bare qualities first, so a per-operation value overrides them.
    ordered = sorted(qualities, key=lambda spec: spec.operation is not None)
    for spec in ordered:
        _apply_quality(params, operations, spec, effective_format)

    resizable = [name for name in operations if name in RESIZE_OPERATIONS]
    if width is not None or height is not None or allow_upscale:
        if not resizable:
            raise UsageError(
                "--width, --height and --allow-upscale apply to jpg, png, webp, "
                "avif and denoise, and none of them is requested"
            )
        for name in resizable:
            entry = params.setdefault(name, {})
            if width is not None:
                entry["width"] = width
            if height is not None:
                entry["height"] = height
            if allow_upscale:
                entry["allow_upscale"] = True
    return params


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--api-url",
        default=os.environ.get(API_URL_ENV) or DEFAULT_API_URL,
        help=f"base URL of the API (default ${API_URL_ENV} or {DEFAULT_API_URL})",
    )
    group.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"API key, sent as X-API-Key (default ${API_KEY_ENV})",
    )
    group.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="log retries, submissions and downloads",
    )


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("waiting")
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_WAIT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="give up waiting after this many seconds (exit code 5; "
        f"default {DEFAULT_WAIT_TIMEOUT_SECONDS:g})",
    )
    group.add_argument(
        "--poll-interval",
        type=positive_float,
        default=DEFAULT_POLL_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="seconds between status checks "
        f"(default {DEFAULT_POLL_INTERVAL_SECONDS:g})",
    )
    group.add_argument(
        "--quiet", "-q", action="store_true", help="show no progress bars or lines"
    )


def _add_download_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        required=required,
        metavar="DIR",
        help="folder for the results and the ZIP bundle (created if missing)",
    )
    parser.add_argument(
        "--no-archive",
        action="store_true",
        help="download the results only, without the ZIP bundle",
    )


def _subparser(
    parent: CliArgumentParser,
    commands: Any,
    name: str,
    help_text: str,
    description: str,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=textwrap.fill(description, HELP_WIDTH),
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parent.subcommand_parsers[name] = parser
    return parser


def build_parser() -> CliArgumentParser:
    parser = CliArgumentParser(
        prog="pixtools",
        description="Submit images to a PixTools API, follow the jobs and "
        "download the results.",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.subcommand_parsers = {}
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    submit = _subparser(
        parser,
        commands,
        "submit",
        "upload files, one job per file",
        "Upload each file as one job with the same operations. Prints "
        "'JOB_ID<TAB>FILE' for each accepted file on stdout.",
    )
    submit.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="image files or glob patterns (quoted patterns are expanded here, "
        "** included)",
    )
    submit.add_argument(
        "--op",
        dest="operations",
        action="append",
        required=True,
        metavar="NAME",
        help=f"operation to run: {', '.join(OPERATIONS)}; repeat or separate "
        "with commas",
    )
    submit.add_argument(
        "--quality",
        type=quality_spec,
        action="append",
        default=[],
        metavar="[OP=]N",
        help="quality 1-100 for every lossy operation, or OP=N for one "
        "(jpg, webp, avif; denoise with --denoise-format other than png)",
    )
    submit.add_argument(
        "--width", type=positive_int, metavar="PX", help="maximum width in pixels"
    )
    submit.add_argument(
        "--height", type=positive_int, metavar="PX", help="maximum height in pixels"
    )
    submit.add_argument(
        "--allow-upscale",
        action="store_true",
        help="enlarge images smaller than --width/--height",
    )
    submit.add_argument(
        "--denoise-format",
        choices=DENOISE_FORMATS,
        help="output format of denoise (default png)",
    )
    submit.add_argument(
        "--webhook", metavar="URL", help="URL that receives a POST when a job ends"
    )
    submit.add_argument(
        "--wait",
        action="store_true",
        help="wait for the jobs to finish, showing progress (implied by --out)",
    )
    _add_download_options(submit, required=False)
    _add_wait_options(submit)
    _add_connection_options(submit)

    status = _subparser(
        parser,
        commands,
        "status",
        "show the status of jobs",
        "Show each job's status and its operations.",
    )
    status.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    status.add_argument("--json", action="store_true", help="print the job JSON")
    _add_connection_options(status)

    wait = _subparser(
        parser,
        commands,
        "wait",
        "wait until jobs finish",
        "Wait until each job is final, showing progress.",
    )
    wait.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    _add_download_options(wait, required=False)
    _add_wait_options(wait)
    _add_connection_options(wait)

    download = _subparser(
        parser,
        commands,
        "download",
        "download the results and ZIP of jobs",
        "Download every result of each job and its ZIP bundle into a folder.",
    )
    download.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    _add_download_options(download, required=True)
    _add_connection_options(download)

    metadata = _subparser(
        parser,
        commands,
        "metadata",
        "print the image metadata of a job",
        "Print the EXIF, GPS, IPTC and XMP metadata that the metadata "
        "operation extracted. GPS coordinates are marked as private data.",
    )
    metadata.add_argument("job_id", metavar="JOB_ID")
    metadata.add_argument(
        "--json", action="store_true", help="print the metadata document as JSON"
    )
    _add_connection_options(metadata)
    return parser


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; for submit also build operations and params."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "submit":
        submit_parser = parser.subcommand_parsers["submit"]
        try:
            arguments.operations = parse_operations(arguments.operations)
            arguments.params = build_operation_params(
                arguments.operations,
                qualities=arguments.quality,
                width=arguments.width,
                height=arguments.height,
                allow_upscale=arguments.allow_upscale,
                denoise_format=arguments.denoise_format,
            )
        except UsageError as exc:
            submit_parser.error(exc.message)
    return arguments
