"""Checks of the settings that guard the API edge: API keys, CORS, webhook limits.

Settings calls these from its validators, so a bad value stops the process at
startup with a message that names the variable.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pixtools_shared.settings import Settings

# Key ids become part of the idempotency scope ("key:{id}", at most 128 chars)
# and of log lines, so they are short and plain.
API_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SHA256_HEX_PATTERN = re.compile(r"[0-9a-f]{64}")

# Seconds the webhook task keeps for its database work besides one attempt.
WEBHOOK_TASK_BOOKKEEPING_SECONDS = 10


def check_api_key_entries(entries: list[str]) -> list[str]:
    """Validate ``id:sha256hex`` entries; raise ValueError naming the bad one."""
    seen: set[str] = set()
    normalised: list[str] = []
    for position, entry in enumerate(entries, start=1):
        key_id, separator, digest = entry.partition(":")
        digest = digest.lower()
        if not separator or not SHA256_HEX_PATTERN.fullmatch(digest):
            raise ValueError(
                f"API_KEYS entry {position} is not 'id:sha256hex' (the SHA-256 hex "
                "digest of the key, never the key itself); create one with "
                "'python -m pixtools_api.api_keys create --id NAME'"
            )
        if not API_KEY_ID_PATTERN.fullmatch(key_id):
            raise ValueError(
                f"API_KEYS entry {position} has the id {key_id!r}; an id is 1 to 64 "
                "letters, digits, '_', '.' or '-'"
            )
        if key_id in seen:
            raise ValueError(f"API_KEYS lists the id {key_id!r} twice")
        seen.add(key_id)
        normalised.append(f"{key_id}:{digest}")
    return normalised


def check_origins(origins: list[str]) -> list[str]:
    """Validate CORS origins (``scheme://host[:port]``) and return them normalised."""
    normalised: list[str] = []
    for origin in origins:
        if origin == "*":
            raise ValueError(
                "CORS_ALLOWED_ORIGINS must list origins explicitly; '*' is not allowed"
            )
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ValueError(
                f"CORS_ALLOWED_ORIGINS entry {origin!r} is not an origin like "
                "https://app.example.com"
            )
        normalised.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return normalised


def check_edge_settings(settings: Settings) -> None:
    """Cross-field checks: production access rules and the webhook deadline."""
    from pixtools_shared.settings import WEBHOOK_TASK_MARGIN_SECONDS

    if (
        settings.ENVIRONMENT == "production"
        and not settings.API_KEYS
        and settings.ALLOW_ANONYMOUS is not True
    ):
        raise ValueError(
            "ENVIRONMENT=production needs API_KEYS, or ALLOW_ANONYMOUS=true to "
            "serve the API without keys on purpose"
        )

    if settings.WEBHOOK_SIGNING_SECRET:
        from pixtools_shared.webhooks.signing import (
            InvalidSigningSecretError,
            signing_key,
        )

        try:
            signing_key(settings.WEBHOOK_SIGNING_SECRET)
        except InvalidSigningSecretError as exc:
            raise ValueError(f"WEBHOOK_SIGNING_SECRET is invalid: {exc}") from None

    longest_deadline = (
        settings.WEBHOOK_TIMEOUT_SECONDS
        + WEBHOOK_TASK_MARGIN_SECONDS
        - WEBHOOK_TASK_BOOKKEEPING_SECONDS
    )
    if longest_deadline < settings.WEBHOOK_ATTEMPT_DEADLINE_SECONDS:
        raise ValueError(
            f"WEBHOOK_ATTEMPT_DEADLINE_SECONDS must be at most {longest_deadline:g} "
            "(WEBHOOK_TIMEOUT_SECONDS plus the webhook task's margin, less "
            f"{WEBHOOK_TASK_BOOKKEEPING_SECONDS} s), or the task time limit ends "
            "the attempt first"
        )
