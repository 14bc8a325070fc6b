"""Tests of the subcommands against a scripted API (httpx.MockTransport)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixtools_cli.cli import parse_arguments
from pixtools_cli.client import PixToolsClient, RetryPolicy
from pixtools_cli.commands import COMMANDS, Console
from pixtools_cli.exit_codes import ExitCode

LIMITS = {"max_upload_bytes": 50, "max_image_pixels": 100, "max_image_side": 10}


def run_command(
    argv: list[str], handler: Callable[[httpx.Request], httpx.Response]
) -> tuple[ExitCode, str, str]:
    arguments = parse_arguments(argv)
    stdout = io.StringIO()
    stderr = io.StringIO()
    client = PixToolsClient(
        "http://127.0.0.1:8000",
        retry=RetryPolicy(attempts=2, backoff_seconds=0.01),
        transport=httpx.MockTransport(handler),
        sleep=lambda _seconds: None,
    )
    with client:
        code = COMMANDS[arguments.command](arguments, client, Console(stdout, stderr))
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    small = tmp_path / "small.jpg"
    small.write_bytes(b"\xff\xd8\xff" + b"s" * 20)
    large = tmp_path / "large.jpg"
    large.write_bytes(b"\xff\xd8\xff" + b"l" * 100)
    other = tmp_path / "other.jpg"
    other.write_bytes(b"\xff\xd8\xff" + b"o" * 20)
    return {"small": small, "large": large, "other": other}


def test_submit_rejects_oversized_file_locally(files: dict[str, Path]) -> None:
    posted: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/limits":
            return httpx.Response(200, json=LIMITS)
        posted.append(request.read())
        return httpx.Response(202, json={"job_id": "job-small", "status": "QUEUED"})

    code, out, err = run_command(
        ["submit", str(files["large"]), str(files["small"]), "--op", "jpg"], handler
    )

    assert code is ExitCode.REJECTED
    assert out == f"job-small\t{files['small']}\n"
    assert "the file has 103 bytes and the API accepts at most 50 bytes" in err
    assert len(posted) == 1


def test_submit_stops_when_api_unreachable(files: dict[str, Path]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/limits":
            return httpx.Response(200, json=LIMITS)
        raise httpx.ConnectError("refused", request=request)

    code, out, err = run_command(
        ["submit", str(files["small"]), str(files["other"]), "--op", "jpg"], handler
    )

    assert code is ExitCode.UNAVAILABLE
    assert out == ""
    assert "upload of small.jpg failed after 2 attempts" in err
    assert "1 more files not submitted" in err


def test_submit_reports_rejection_with_advice(files: dict[str, Path]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/limits":
            return httpx.Response(200, json=LIMITS)
        error = {
            "code": "invalid-image",
            "message": "The file is damaged.",
            "details": [{"field": "file", "message": "truncated"}],
        }
        return httpx.Response(422, json={"error": error})

    code, _out, err = run_command(
        ["submit", str(files["small"]), "--op", "jpg"], handler
    )

    assert code is ExitCode.REJECTED
    assert err.splitlines() == [
        f"pixtools: {files['small']}: rejected, HTTP 422 invalid-image: "
        "The file is damaged.",
        "  - file: truncated",
        "  The file is damaged or not an image; check that it opens in an image "
        "viewer.",
    ]


def job_resource(status: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "job_id": "job-1",
        "status": status,
        "operations": operations,
        "metadata": None,
        "source": {"filename": "a.jpg"},
        "expires_at": "2030-01-01T00:00:00+00:00",
    }


def serve_job(job: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(200, content=json.dumps(job))


def test_download_of_running_job_exits_5(tmp_path: Path) -> None:
    job = job_resource("RUNNING", [{"name": "jpg", "status": "RUNNING"}])

    code, out, err = run_command(
        ["download", "job-1", "--out", str(tmp_path)], serve_job(job)
    )

    assert code is ExitCode.TIMED_OUT
    assert out == ""
    assert "job job-1 is RUNNING; run 'pixtools wait job-1 --out DIR'" in err


@pytest.mark.parametrize(
    ("status", "operations", "code", "message"),
    [
        (
            "COMPLETED",
            [{"name": "jpg", "status": "SUCCEEDED"}],
            ExitCode.JOB_FAILED,
            "did not request the metadata operation",
        ),
        (
            "COMPLETED_WITH_ERRORS",
            [
                {
                    "name": "metadata",
                    "status": "FAILED",
                    "error": {"code": "invalid-image", "message": "Unreadable."},
                }
            ],
            ExitCode.JOB_FAILED,
            "metadata of job job-1 failed (invalid-image): Unreadable.",
        ),
        (
            "RUNNING",
            [{"name": "metadata", "status": "QUEUED"}],
            ExitCode.TIMED_OUT,
            "is not ready (job RUNNING)",
        ),
    ],
)
def test_metadata_missing_reasons(
    status: str, operations: list[dict[str, Any]], code: ExitCode, message: str
) -> None:
    result, out, err = run_command(
        ["metadata", "job-1"], serve_job(job_resource(status, operations))
    )

    assert result is code
    assert out == ""
    assert message in err


def test_metadata_json_escapes_control_characters() -> None:
    job = job_resource("COMPLETED", [{"name": "metadata", "status": "SUCCEEDED"}])
    job["metadata"] = {"exif": {"IFD0": {"Make": "evil\x1b[2J"}}}

    code, out, _err = run_command(["metadata", "job-1", "--json"], serve_job(job))

    assert code is ExitCode.OK
    assert "\x1b" not in out
    assert json.loads(out) == job["metadata"]


def test_status_json_lines_and_exit_code() -> None:
    job = job_resource("FAILED", [{"name": "jpg", "status": "FAILED"}])

    code, out, _err = run_command(["status", "job-1", "--json"], serve_job(job))

    assert code is ExitCode.JOB_FAILED
    assert json.loads(out)["status"] == "FAILED"
