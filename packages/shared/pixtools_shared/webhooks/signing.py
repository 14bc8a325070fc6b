"""Webhook signatures in the Standard Webhooks format (standardwebhooks.com).

Each delivery carries three headers: ``webhook-id`` (the same for every attempt
of one event, so receivers can drop duplicates), ``webhook-timestamp`` (Unix
seconds of this attempt) and ``webhook-signature``: ``v1,`` followed by the
base64 HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``. A receiver
recomputes the HMAC with the shared secret and rejects old timestamps, so a
captured delivery cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)


class InvalidSigningSecretError(ValueError):
    """A ``whsec_`` secret whose remainder is not base64."""


def signing_key(secret: str) -> bytes:
    """Return the HMAC key of a secret: base64-decoded after ``whsec_``, else UTF-8."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode("utf-8")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise InvalidSigningSecretError(
            "the part after 'whsec_' is not valid base64"
        ) from None
    if not key:
        raise InvalidSigningSecretError("the part after 'whsec_' is empty")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value for one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    secret: str | None, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Build the id, timestamp and (when a secret is set) signature headers."""
    headers = {ID_HEADER: message_id, TIMESTAMP_HEADER: str(timestamp)}
    if secret:
        headers[SIGNATURE_HEADER] = sign(
            signing_key(secret), message_id, timestamp, body
        )
    return headers
