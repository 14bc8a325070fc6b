"""API keys: who the caller is, from the ``X-API-Key`` or ``Authorization`` header.

API_KEYS contains ``id:sha256hex`` entries, never the keys themselves. A presented
key is hashed and compared with every entry by ``hmac.compare_digest``, always
all of them, so the time taken does not tell which entry came close. Keys are
high-entropy random strings (see api_keys.py), so one SHA-256 is enough; a slow
password hash would only slow every request. Keys are never logged: logs carry
the key id.

A key in the query string is rejected (401) even when it is valid, because
URLs end up in proxy logs, browser history and Referer headers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from pixtools_shared.errors import PixToolsError
from pixtools_shared.settings import Settings

API_KEY_HEADER = "X-API-Key"
AUTHORIZATION_HEADER = "Authorization"
WWW_AUTHENTICATE = 'Bearer realm="pixtools"'

# Query parameters that look like credentials; their presence alone is a 401.
QUERY_CREDENTIAL_NAMES = frozenset(
    {"api_key", "apikey", "api-key", "x-api-key", "key", "token", "access_token"}
)

# Longest header value read as a key; longer values are rejected unhashed.
MAX_KEY_LENGTH = 512

ANONYMOUS_SCOPE = ""


@dataclass(frozen=True)
class Caller:
    """The client of a request: an API key id, or None for anonymous access."""

    key_id: str | None

    @property
    def scope(self) -> str:
        """Idempotency and rate-limit scope: ``key:{id}``, or "" for anonymous."""
        return ANONYMOUS_SCOPE if self.key_id is None else f"key:{self.key_id}"


ANONYMOUS = Caller(key_id=None)


class AuthenticationError(PixToolsError):
    """Base of the 401 errors; each carries the WWW-Authenticate challenge."""

    code = "unauthenticated"
    http_status = 401
    default_message = "An API key is required."
    www_authenticate = WWW_AUTHENTICATE


class ApiKeyRequiredError(AuthenticationError):
    code = "api-key-required"
    default_message = (
        "This endpoint requires an API key in the X-API-Key header or as "
        "'Authorization: Bearer <key>'."
    )


class InvalidApiKeyError(AuthenticationError):
    code = "invalid-api-key"
    default_message = "The API key is not valid."


class ApiKeyInQueryError(AuthenticationError):
    code = "api-key-in-query"
    default_message = (
        "API keys are not accepted in the URL; send the key in the X-API-Key "
        "header and replace it, because URLs are logged."
    )


def hash_api_key(key: str) -> str:
    """Return the SHA-256 hex digest that API_KEYS stores for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyRing:
    """The configured key ids and digests."""

    entries: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        entries = []
        for entry in settings.API_KEYS:
            key_id, _, digest = entry.partition(":")
            entries.append((key_id, bytes.fromhex(digest)))
        return cls(tuple(entries))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def match(self, key: str) -> str | None:
        """Return the id of the entry whose digest matches ``key``, or None."""
        presented = hashlib.sha256(key.encode("utf-8")).digest()
        matched: str | None = None
        for key_id, digest in self.entries:
            # No early exit: every entry is compared on every call.
            if hmac.compare_digest(presented, digest):
                matched = key_id
        return matched


def credential_in_query(query: Mapping[str, str] | list[tuple[str, str]]) -> bool:
    """Tell whether the query string carries a parameter named like a credential."""
    names = query.keys() if isinstance(query, Mapping) else [n for n, _ in query]
    return any(name.lower() in QUERY_CREDENTIAL_NAMES for name in names)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """Return the key from X-API-Key or an ``Authorization: Bearer`` header.

    Raises InvalidApiKeyError when both headers carry different keys or a key
    is too long.
    """
    candidates: list[str] = []
    header_key = headers.get(API_KEY_HEADER.lower(), "").strip()
    if header_key:
        candidates.append(header_key)
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        candidates.append(credentials.strip())

    if not candidates:
        return None
    if len(set(candidates)) > 1:
        raise InvalidApiKeyError(
            "X-API-Key and Authorization carry different keys; send one."
        )
    if len(candidates[0]) > MAX_KEY_LENGTH:
        raise InvalidApiKeyError()
    return candidates[0]


def authenticate(
    headers: Mapping[str, str], key_ring: KeyRing, allow_anonymous: bool
) -> Caller:
    """Identify the caller or raise an AuthenticationError (401).

    A presented key must be valid even where anonymous access is allowed, so a
    mistyped key is reported instead of silently creating anonymous jobs.
    """
    key = presented_key(headers)
    if key is None:
        if allow_anonymous:
            return ANONYMOUS
        raise ApiKeyRequiredError()

    key_id = key_ring.match(key)
    if key_id is None:
        raise InvalidApiKeyError()
    return Caller(key_id=key_id)
