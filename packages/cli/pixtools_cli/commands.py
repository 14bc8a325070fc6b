"""The subcommands of `pixtools`: submit, status, wait, download and metadata.

Results meant for scripts go to stdout: job ids, downloaded paths, JSON.
Progress, summaries and errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import structlog

from pixtools_cli.advice import describe_rejection
from pixtools_cli.client import PixToolsClient
from pixtools_cli.download import DownloadPlan, download_job
from pixtools_cli.errors import ApiRejectedError, ApiUnavailableError
from pixtools_cli.exit_codes import (
    FINAL_JOB_STATUSES,
    ExitCode,
    combine_exit_codes,
    exit_code_for_status,
)
from pixtools_cli.inputs import expand_inputs
from pixtools_cli.metadata_view import format_metadata
from pixtools_cli.progress import JobProgress, create_progress
from pixtools_cli.terminal import printable
from pixtools_cli.waiting import summarize_job, wait_for_jobs

logger = structlog.get_logger(__name__)

DOWNLOADABLE_STATUSES = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS"})


@dataclass
class Console:
    """The two output streams of a command."""

    stdout: TextIO
    stderr: TextIO

    def out(self, line: str) -> None:
        self.stdout.write(line + "\n")
        self.stdout.flush()

    def err(self, line: str) -> None:
        self.stderr.write(line + "\n")
        self.stderr.flush()

    def report_rejection(self, subject: str, error: ApiRejectedError) -> None:
        lines = describe_rejection(error)
        self.err(f"pixtools: {printable(subject)}: rejected, {printable(lines[0])}")
        for line in lines[1:]:
            self.err(printable(line))


def check_upload_size(path: Path, limits: dict[str, Any]) -> str | None:
    """Return why the API would reject the file's size, or None when it fits."""
    maximum = limits.get("max_upload_bytes")
    size = path.stat().st_size
    if size == 0:
        return "the file is empty; choose an image file"
    if isinstance(maximum, int) and size > maximum:
        return (
            f"the file has {size} bytes and the API accepts at most {maximum} "
            "bytes (upload-too-large); send a smaller file"
        )
    return None


def fetch_limits(client: PixToolsClient) -> dict[str, Any]:
    """GET /api/limits; an API without the route gets no local checks."""
    try:
        return client.get_limits()
    except ApiRejectedError as exc:
        if exc.status == 404:
            return {}
        raise


def download_items(
    client: PixToolsClient,
    items: Sequence[JobProgress],
    arguments: argparse.Namespace,
    console: Console,
    report: Callable[[Path], None],
) -> list[ExitCode]:
    """Download the results of every item whose job ended with results."""
    plan = DownloadPlan(arguments.out)
    codes = []
    for item in items:
        if not item.job or item.job.get("status") not in DOWNLOADABLE_STATUSES:
            continue
        try:
            paths = download_job(
                client, item.job, plan, include_archive=not arguments.no_archive
            )
        except ApiRejectedError as exc:
            console.report_rejection(item.label, exc)
            codes.append(ExitCode.REJECTED)
            continue
        for path in paths:
            report(path)
    return codes


def wait_and_download(
    client: PixToolsClient,
    items: list[JobProgress],
    arguments: argparse.Namespace,
    console: Console,
    report: Callable[[Path], None],
) -> list[ExitCode]:
    """Wait for the jobs with progress on stderr, then download into --out."""
    reporter = create_progress(console.stderr, quiet=arguments.quiet)
    results = wait_for_jobs(
        client,
        items,
        timeout=arguments.timeout,
        poll_interval=arguments.poll_interval,
        reporter=reporter,
    )
    for item in items:
        for line in summarize_job(item, results[item.job_id], arguments.timeout):
            console.err(line)

    codes = list(results.values())
    if arguments.out is not None:
        codes += download_items(client, items, arguments, console, report)
    return codes


def submit_command(
    arguments: argparse.Namespace, client: PixToolsClient, console: Console
) -> ExitCode:
    files = expand_inputs(arguments.files)
    limits = fetch_limits(client)

    codes: list[ExitCode] = []
    items: list[JobProgress] = []
    for index, path in enumerate(files):
        problem = check_upload_size(path, limits)
        if problem is not None:
            console.err(f"pixtools: {printable(path)}: rejected, {problem}")
            codes.append(ExitCode.REJECTED)
            continue

        try:
            submitted = client.submit_file(
                path,
                operations=arguments.operations,
                params=arguments.params,
                webhook_url=arguments.webhook,
                idempotency_key=str(uuid.uuid4()),
            )
        except ApiRejectedError as exc:
            console.report_rejection(str(path), exc)
            codes.append(ExitCode.REJECTED)
            continue
        except ApiUnavailableError as exc:
            console.err(f"pixtools: {printable(path)}: {printable(exc.message)}")
            skipped = len(files) - index - 1
            if skipped:
                console.err(f"pixtools: {skipped} more files not submitted")
            codes.append(ExitCode.UNAVAILABLE)
            break
        except OSError as exc:
            console.err(f"pixtools: {printable(path)}: cannot read: {exc.strerror}")
            codes.append(ExitCode.USAGE)
            continue

        logger.info(
            "job_submitted",
            job_id=submitted.job_id,
            file=str(path),
            replayed=submitted.replayed,
        )
        console.out(f"{submitted.job_id}\t{path}")
        items.append(JobProgress(label=path.name, job_id=submitted.job_id))

    if items and (arguments.wait or arguments.out is not None):

        def report_saved(path: Path) -> None:
            console.err(f"saved {path}")

        codes += wait_and_download(client, items, arguments, console, report_saved)
    return combine_exit_codes(codes)


def wait_command(
    arguments: argparse.Namespace, client: PixToolsClient, console: Console
) -> ExitCode:
    items = [JobProgress(label=job_id, job_id=job_id) for job_id in arguments.job_ids]
    codes = wait_and_download(client, items, arguments, console, print_path(console))
    return combine_exit_codes(codes)


def print_path(console: Console) -> Callable[[Path], None]:
    def report(path: Path) -> None:
        console.out(str(path))

    return report


def format_status(job: dict[str, Any]) -> list[str]:
    """Format the status of one job: a header, one line per operation, the ZIP."""
    source = job.get("source") or {}
    lines = [
        f"{printable(job.get('job_id'))}  {printable(job.get('status'))}  "
        f"{printable(source.get('filename', ''))}"
    ]
    for entry in job.get("operations") or []:
        name = printable(entry.get("name"))
        line = f"  {name:<9} {printable(entry.get('status')):<10}"
        if entry.get("width") and entry.get("height"):
            line += f" {entry['width']}x{entry['height']}"
        if entry.get("size_bytes"):
            line += f" {entry['size_bytes']} bytes"
        error = entry.get("error")
        if isinstance(error, dict):
            code = printable(error.get("code"))
            line += f" ({code}) {printable(error.get('message'))}"
        lines.append(line.rstrip())
    if job.get("archive_url"):
        lines.append("  ZIP bundle ready")
    if job.get("error_message"):
        lines.append(f"  {printable(job['error_message'])}")
    lines.append(f"  expires {printable(job.get('expires_at'))}")
    return lines


def status_command(
    arguments: argparse.Namespace, client: PixToolsClient, console: Console
) -> ExitCode:
    codes = []
    for job_id in arguments.job_ids:
        try:
            job = client.get_job(job_id)
        except ApiRejectedError as exc:
            console.report_rejection(job_id, exc)
            codes.append(ExitCode.REJECTED)
            continue
        if arguments.json:
            console.out(json.dumps(job, sort_keys=True))
        else:
            for line in format_status(job):
                console.out(line)
        codes.append(exit_code_for_status(str(job.get("status"))))
    return combine_exit_codes(codes)


def download_command(
    arguments: argparse.Namespace, client: PixToolsClient, console: Console
) -> ExitCode:
    codes = []
    items = []
    for job_id in arguments.job_ids:
        try:
            job = client.get_job(job_id)
        except ApiRejectedError as exc:
            console.report_rejection(job_id, exc)
            codes.append(ExitCode.REJECTED)
            continue

        status = printable(job.get("status"))
        if status not in FINAL_JOB_STATUSES:
            console.err(
                f"pixtools: job {printable(job_id)} is {status}; run 'pixtools "
                f"wait {printable(job_id)} --out DIR' to download it when done"
            )
            codes.append(ExitCode.TIMED_OUT)
            continue
        if status not in DOWNLOADABLE_STATUSES:
            console.err(f"pixtools: job {printable(job_id)} is {status}; no results")
        codes.append(exit_code_for_status(status))
        items.append(JobProgress(label=job_id, job_id=job_id, job=job))

    codes += download_items(client, items, arguments, console, print_path(console))
    return combine_exit_codes(codes)


def metadata_command(
    arguments: argparse.Namespace, client: PixToolsClient, console: Console
) -> ExitCode:
    job_id = arguments.job_id
    try:
        job = client.get_job(job_id)
    except ApiRejectedError as exc:
        console.report_rejection(job_id, exc)
        return ExitCode.REJECTED

    metadata = job.get("metadata")
    if not isinstance(metadata, dict):
        return report_missing_metadata(job, console)

    if arguments.json:
        # ensure_ascii escapes control characters, so the output is safe to print.
        console.out(json.dumps(metadata, indent=2, sort_keys=True))
        return ExitCode.OK
    source = job.get("source") or {}
    console.out(f"Metadata of {printable(source.get('filename', job_id))}")
    for line in format_metadata(metadata):
        console.out(line)
    return ExitCode.OK


def report_missing_metadata(job: dict[str, Any], console: Console) -> ExitCode:
    """Explain why a job has no metadata and return the matching exit code."""
    job_id = printable(job.get("job_id"))
    status = printable(job.get("status"))
    operation = next(
        (
            entry
            for entry in job.get("operations") or []
            if entry.get("name") == "metadata"
        ),
        None,
    )
    if operation is None:
        console.err(
            f"pixtools: job {job_id} did not request the metadata operation; "
            "submit the file again with --op metadata"
        )
        return ExitCode.JOB_FAILED
    if operation.get("status") == "FAILED":
        error = operation.get("error") or {}
        console.err(
            f"pixtools: metadata of job {job_id} failed "
            f"({printable(error.get('code'))}): {printable(error.get('message'))}"
        )
        return ExitCode.JOB_FAILED
    if status in FINAL_JOB_STATUSES:
        console.err(f"pixtools: job {job_id} is {status}; it has no metadata")
        return ExitCode.JOB_FAILED
    console.err(
        f"pixtools: metadata of job {job_id} is not ready (job {status}); "
        f"run 'pixtools wait {job_id}' first"
    )
    return ExitCode.TIMED_OUT


CommandHandler = Callable[[argparse.Namespace, PixToolsClient, Console], ExitCode]

COMMANDS: dict[str, CommandHandler] = {
    "submit": submit_command,
    "status": status_command,
    "wait": wait_command,
    "download": download_command,
    "metadata": metadata_command,
}
