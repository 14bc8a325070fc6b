"""Tests of the log redaction processor, alone and through configure_logging."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from pixtools_shared.observability.log_config import configure_logging
from pixtools_shared.observability.redaction import (
    REDACTED,
    redact_secrets,
    redact_text,
    redact_value,
)
from pixtools_shared.settings import Settings

PRESIGNED = (
    "https://bucket.s3.amazonaws.com/outputs/job/jpg.jpg?X-Amz-Algorithm=AWS4"
    "&X-Amz-Signature=0123abcd&X-Amz-Credential=AKIA%2F"
)


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "DB_PASSWORD",
        "api_key",
        "X-Api-Key",
        "token",
        "METRICS_TOKEN",
        "signature",
        "Authorization",
        "webhook_signing_secret",
        "aws_secret_access_key",
        "cookie",
    ],
)
def test_sensitive_keys_redacted(key: str) -> None:
    event = redact_secrets(None, "info", {"event": "x", key: "value-123"})
    assert event[key] == REDACTED


@pytest.mark.parametrize("key", ["job_id", "task_id", "trace_id", "key", "operation"])
def test_ordinary_keys_kept(key: str) -> None:
    event = redact_secrets(None, "info", {"event": "x", key: "value-123"})
    assert event[key] == "value-123"


def test_url_query_removed() -> None:
    text = f"download from {PRESIGNED} failed"
    redacted = redact_text(text)
    assert redacted == (
        "download from https://bucket.s3.amazonaws.com/outputs/job/jpg.jpg?"
        f"{REDACTED} failed"
    )
    assert "Signature" not in redacted


def test_url_password_masked() -> None:
    text = "broker amqp://pixtools:s3cr3t@rabbitmq:5672// unreachable"
    assert (
        redact_text(text)
        == f"broker amqp://pixtools:{REDACTED}@rabbitmq:5672// unreachable"
    )


def test_url_without_secret_kept() -> None:
    text = "posted to https://hooks.example.com/pixtools after 2 s"
    assert redact_text(text) == text


def test_nested_values_redacted() -> None:
    value = {
        "headers": {"Authorization": "Bearer abc", "Accept": "*/*"},
        "urls": [PRESIGNED, "plain"],
        "count": 3,
    }
    assert redact_value(value) == {
        "headers": {"Authorization": REDACTED, "Accept": "*/*"},
        "urls": [
            f"https://bucket.s3.amazonaws.com/outputs/job/jpg.jpg?{REDACTED}",
            "plain",
        ],
        "count": 3,
    }


def test_deep_nesting_cut() -> None:
    value: dict[str, object] = {"level": "bottom"}
    for _ in range(12):
        value = {"inner": value}
    redacted = redact_value(value)
    for _ in range(8):
        assert isinstance(redacted, dict)
        redacted = redacted["inner"]
    assert redacted == REDACTED


@pytest.fixture
def json_logging() -> Iterator[None]:
    # The handler writes to sys.stderr as pytest captures it during the test.
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers = []


def test_json_logs_redacted(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(LOG_JSON=True, LOG_LEVEL="INFO"))
    log = structlog.get_logger("test.redaction")
    log.info("download_ready", url=PRESIGNED, api_key="pk_live_123", job_id="j1")
    try:
        raise RuntimeError(f"could not read {PRESIGNED}")
    except RuntimeError as exc:
        log.error("storage_failed", exc_info=exc)
    logging.getLogger("celery").warning("Connected to amqp://guest:guest@host:5672//")

    output = capsys.readouterr().err
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 3
    ready, failed, foreign = lines
    assert ready["url"] == (
        f"https://bucket.s3.amazonaws.com/outputs/job/jpg.jpg?{REDACTED}"
    )
    assert ready["api_key"] == REDACTED
    assert ready["job_id"] == "j1"
    assert "X-Amz-Signature" not in failed["exception"]
    assert "RuntimeError" in failed["exception"]
    assert foreign["event"] == f"Connected to amqp://guest:{REDACTED}@host:5672//"
    assert "pk_live_123" not in output
