"""Tests of Idempotency-Key parsing and request fingerprints."""

from __future__ import annotations

import pytest

from pixtools_api.idempotency import (
    InvalidIdempotencyKeyError,
    compute_request_fingerprint,
    parse_idempotency_key,
)
from pixtools_shared.operations import parse_operation_request


def test_key_absent() -> None:
    assert parse_idempotency_key(None) is None


def test_key_stripped() -> None:
    assert parse_idempotency_key("  abc-123  ") == "abc-123"


@pytest.mark.parametrize(
    "header",
    ["", "   ", '""', "k" * 256, "has space", "ümlaut", "a,b", 'a"b', "a\\b", "x\ty"],
)
def test_key_rejected(header: str) -> None:
    with pytest.raises(InvalidIdempotencyKeyError) as caught:
        parse_idempotency_key(header)

    assert caught.value.http_status == 400
    assert caught.value.code == "invalid-idempotency-key"
    assert caught.value.details[0]["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (
            '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
        ),
        ("01HZX3K9Q7+base64/=", "01HZX3K9Q7+base64/="),
        ("order:42.retry~1_a", "order:42.retry~1_a"),
    ],
)
def test_key_forms_accepted(header: str, key: str) -> None:
    assert parse_idempotency_key(header) == key


def test_key_at_max_length() -> None:
    assert parse_idempotency_key("k" * 255) == "k" * 255


def fingerprint(
    operations: str, params: str | None = None, webhook: str | None = None
) -> str:
    return compute_request_fingerprint(
        source_sha256="ab" * 32,
        filename="a.png",
        operations=parse_operation_request(operations, params),
        webhook_url=webhook,
    )


def test_fingerprint_ignores_default_spelling() -> None:
    # Defaults are filled in before hashing, so an explicit default is the same.
    assert fingerprint('["jpg"]') == fingerprint('["jpg"]', '{"jpg": {"quality": 85}}')


def test_fingerprint_changes_with_request() -> None:
    base = fingerprint('["jpg"]')

    assert fingerprint('["png"]') != base
    assert fingerprint('["jpg"]', '{"jpg": {"quality": 50}}') != base
    assert fingerprint('["jpg"]', webhook="https://example.test/hook") != base
    assert len(base) == 64
