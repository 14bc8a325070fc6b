"""Validation of webhook URLs, shared by the API (at submit) and the webhook task.

Rules: http(s) only (http needs WEBHOOK_ALLOW_HTTP), at most WEBHOOK_MAX_URL_LENGTH
characters, a host and no credentials. A host that is an IP address, in any
spelling a resolver accepts (``2130706433``, ``0x7f000001``, ``127.1``), must be
a public one. Names of this machine or of a local network (``localhost``,
``*.local``, ``*.internal``, single-label names) are rejected. Hosts and
addresses listed in WEBHOOK_ALLOWED_HOSTS skip these host checks.

What a name resolves to is checked at delivery time, before every connection
(pixtools_shared.webhooks.destinations), because it can change after submit.
"""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pixtools_shared.errors import PixToolsError
from pixtools_shared.webhooks.addresses import forbidden_reason, parse_host_literal
from pixtools_shared.webhooks.destinations import AllowList

LOCAL_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".lan")

# Letters, digits, hyphens and dots after IDNA encoding; underscores appear in
# some real service names.
HOST_NAME_PATTERN = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


class WebhookUrlSettings(Protocol):
    WEBHOOK_ALLOW_HTTP: bool
    WEBHOOK_ALLOWED_HOSTS: list[str]
    WEBHOOK_MAX_URL_LENGTH: int


class InvalidWebhookUrlError(PixToolsError):
    """The webhook URL is malformed or targets an address that is not allowed."""

    code = "invalid-webhook-url"
    http_status = 422
    default_message = "The webhook URL is not allowed."

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The webhook URL is invalid: {reason}.",
            [{"field": "webhook_url", "message": reason}],
        )
        self.reason = reason


def _encode_host(host: str) -> str:
    """Return the host in IDNA ASCII form, lower case, without trailing dots."""
    host = host.lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidWebhookUrlError(f"the host {host} is not a valid name") from None


def _check_host(host: str, allow_list: AllowList) -> None:
    address = parse_host_literal(host)
    if address is not None:
        if allow_list.admits_address(address):
            return
        reason = forbidden_reason(address)
        if reason is not None:
            raise InvalidWebhookUrlError(f"the address {host} is {reason}")
        return

    if allow_list.admits_name(host):
        return
    if not HOST_NAME_PATTERN.fullmatch(host):
        raise InvalidWebhookUrlError(f"the host {host} is not a valid name")
    if host == "localhost" or host.endswith(LOCAL_NAME_SUFFIXES):
        raise InvalidWebhookUrlError(f"the host {host} is a local name")
    if "." not in host:
        raise InvalidWebhookUrlError(
            f"the host {host} is a single-label name; use a fully qualified name"
        )


def validate_webhook_url(url: str, settings: WebhookUrlSettings) -> str:
    """Return ``url`` normalised (lower-case scheme and host, no fragment) or raise.

    Raises InvalidWebhookUrlError naming the rule that failed.
    """
    url = url.strip()
    if not url:
        raise InvalidWebhookUrlError("the URL is empty")
    if len(url) > settings.WEBHOOK_MAX_URL_LENGTH:
        raise InvalidWebhookUrlError(
            f"the URL is longer than {settings.WEBHOOK_MAX_URL_LENGTH} characters"
        )
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise InvalidWebhookUrlError("the URL contains spaces or control characters")
    if "\\" in url:
        # Browsers and some HTTP clients read a backslash as a slash, which
        # would make them see another host than this parser does.
        raise InvalidWebhookUrlError("the URL contains a backslash")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhookUrlError(f"the URL is malformed ({exc})") from None

    scheme = parts.scheme.lower()
    allowed = ("http", "https") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if scheme not in allowed:
        raise InvalidWebhookUrlError(
            f"the scheme {scheme or '(none)'!r} is not allowed; use "
            f"{' or '.join(allowed)}"
        )
    if not parts.hostname:
        raise InvalidWebhookUrlError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrlError("the URL must not contain credentials")
    if port == 0:
        raise InvalidWebhookUrlError("the port 0 is not allowed")

    host = _encode_host(parts.hostname)
    if not host:
        raise InvalidWebhookUrlError("the URL has no host")
    _check_host(host, AllowList.parse(settings.WEBHOOK_ALLOWED_HOSTS))

    return _normalise(parts, scheme, host, port)


def _normalise(parts: SplitResult, scheme: str, host: str, port: int | None) -> str:
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))
