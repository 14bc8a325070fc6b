"""A structlog processor that removes secrets from log events.

Values of keys that name a secret (``password``, ``token``, ``api_key``,
``signature``, ``authorization``...) are replaced, at any depth of nested dicts
and lists. In every string, URL query strings are cut (presigned S3 URLs and the
API's signed download links carry their signature there, webhook URLs often a
token) and passwords in URLs with credentials (``amqp://user:pass@host``) are
masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

REDACTED = "[REDACTED]"

# Matched anywhere in a key, case-insensitively: "webhook_signing_secret",
# "X-Api-Key" and "aws_secret_access_key" are all caught.
SENSITIVE_KEY_PATTERN = re.compile(
    r"secret|passw(or)?d|token|api[_-]?key|signature|authori[sz]ation|cookie"
    r"|credential|private[_-]?key",
    re.IGNORECASE,
)

# scheme://host/path?query -> the query (up to whitespace, a quote or a fragment).
URL_QUERY_PATTERN = re.compile(
    r"(?P<base>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]+)\?[^\s#\"'<>]*"
)
# scheme://user:password@ -> the password.
URL_PASSWORD_PATTERN = re.compile(
    r"(?P<prefix>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@\"'<>]*:)[^\s/@\"'<>]+(?=@)"
)

# Nested containers deeper than this are replaced whole: log fields are flat in
# practice, and the limit keeps a cyclic structure from recursing forever.
MAX_DEPTH = 8


def is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and SENSITIVE_KEY_PATTERN.search(key) is not None


def redact_text(text: str) -> str:
    """Cut URL query strings and mask URL passwords in ``text``."""
    if "://" not in text:
        return text
    text = URL_QUERY_PATTERN.sub(rf"\g<base>?{REDACTED}", text)
    return URL_PASSWORD_PATTERN.sub(rf"\g<prefix>{REDACTED}", text)


def redact_value(value: Any, depth: int = 0) -> Any:
    """Return ``value`` with secrets removed (strings, dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact_text(value)
    if depth >= MAX_DEPTH and isinstance(value, Mapping | list | tuple):
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_sensitive_key(key) else redact_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item, depth + 1) for item in value]
    return value


def redact_secrets(
    _logger: object, _method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: apply ``redact_value`` to every field of the event."""
    for key, value in list(event_dict.items()):
        if is_sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value)
    return event_dict
