"""Webhook signatures checked against a verifier written here from the Standard
Webhooks specification, not with the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from pixtools_shared.webhooks.signing import (
    InvalidSigningSecretError,
    sign,
    signature_headers,
    signing_key,
)

SECRET_BYTES = b"\x01\x02secret key bytes\xff"
WHSEC = "whsec_" + base64.b64encode(SECRET_BYTES).decode()


def reference_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Verify as a receiver would: whsec_ base64 key, HMAC over id.ts.body."""
    key = (
        base64.b64decode(secret.removeprefix("whsec_"))
        if secret.startswith("whsec_")
        else secret.encode()
    )
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode()
    expected = base64.b64encode(
        hmac.new(key, content + body, hashlib.sha256).digest()
    ).decode()
    for entry in headers["webhook-signature"].split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def test_whsec_signature_verifies() -> None:
    body = b'{"type":"job.completed","data":{"job_id":"x"}}'

    headers = signature_headers(WHSEC, "job_completed_x", 1_700_000_000, body)

    assert headers["webhook-id"] == "job_completed_x"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].startswith("v1,")
    assert reference_verify(WHSEC, headers, body)


def test_plain_secret_signature_verifies() -> None:
    body = b"{}"

    headers = signature_headers("plain text secret", "msg_1", 1_700_000_001, body)

    assert reference_verify("plain text secret", headers, body)


def test_tampering_breaks_signature() -> None:
    body = b'{"a":1}'
    headers = signature_headers(WHSEC, "msg_2", 1_700_000_002, body)

    assert not reference_verify(WHSEC, headers, b'{"a":2}')
    assert not reference_verify(
        WHSEC, {**headers, "webhook-timestamp": "1700000003"}, body
    )
    assert not reference_verify(WHSEC, {**headers, "webhook-id": "msg_3"}, body)
    assert not reference_verify(
        "whsec_" + base64.b64encode(b"other").decode(), headers, body
    )


def test_known_vector() -> None:
    # Computed by hand: HMAC-SHA256(key=b"k", "id.1.body"), base64.
    expected = base64.b64encode(
        hmac.new(b"k", b"id.1.body", hashlib.sha256).digest()
    ).decode()

    assert sign(b"k", "id", 1, b"body") == f"v1,{expected}"


def test_unsigned_without_secret() -> None:
    headers = signature_headers(None, "msg", 5, b"x")

    assert headers == {"webhook-id": "msg", "webhook-timestamp": "5"}


@pytest.mark.parametrize("secret", ["whsec_", "whsec_***not-base64***"])
def test_invalid_whsec_rejected(secret: str) -> None:
    with pytest.raises(InvalidSigningSecretError):
        signing_key(secret)


def test_whsec_key_decoded() -> None:
    assert signing_key(WHSEC) == SECRET_BYTES
