from __future__ import annotations

import pytest

from pixtools_shared.settings import Settings
from pixtools_shared.webhook_url import InvalidWebhookUrlError, validate_webhook_url

HTTPS_ONLY = Settings()
WITH_HTTP = Settings(WEBHOOK_ALLOW_HTTP=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "the URL is empty"),
        ("ftp://hooks.example.com/x", "the scheme 'ftp' is not allowed; use https"),
        ("file:///etc/passwd", "the scheme 'file' is not allowed; use https"),
        ("javascript:alert(1)", "the scheme 'javascript' is not allowed; use https"),
        ("hooks.example.com/x", "the scheme '(none)' is not allowed; use https"),
        ("http://hooks.example.com/x", "the scheme 'http' is not allowed; use https"),
        ("https:///path-only", "the URL has no host"),
        ("https://user:pw@hooks.example.com/", "the URL must not contain credentials"),
        ("https://hooks.example.com:0/", "the port 0 is not allowed"),
        (
            "https://hooks.example.com/a b",
            "the URL contains spaces or control characters",
        ),
        ("https://127.0.0.1/x", "the address 127.0.0.1 is a loopback address"),
        ("https://10.1.2.3/x", "the address 10.1.2.3 is a private address"),
        (
            "https://169.254.169.254/",
            "the address 169.254.169.254 is a cloud metadata address",
        ),
        (
            "https://[fd00:ec2::254]/",
            "the address fd00:ec2::254 is a cloud metadata address",
        ),
        ("https://[::1]/x", "the address ::1 is a loopback address"),
        (
            "https://[::ffff:192.168.0.1]/",
            "the address ::ffff:192.168.0.1 is an IPv4-mapped IPv6 address",
        ),
        ("https://0x7f000001/", "the address 0x7f000001 is a loopback address"),
        ("https://2130706433/", "the address 2130706433 is a loopback address"),
        ("https://0177.0.0.1/", "the address 0177.0.0.1 is a loopback address"),
        ("https://127.1/", "the address 127.1 is a loopback address"),
        ("https://127.0.0.1./", "the address 127.0.0.1 is a loopback address"),
        ("https://0/", "the address 0 is the unspecified address"),
        (
            "https://100.64.0.1/",
            "the address 100.64.0.1 is a carrier-grade NAT address",
        ),
        ("https://224.0.0.1/", "the address 224.0.0.1 is a multicast address"),
        ("https://[fc00::1]/", "the address fc00::1 is a private address"),
        ("https://hooks.example.com\\@10.0.0.1/", "the URL contains a backslash"),
        (
            "https://hooks%2eexample.com/",
            "the host hooks%2eexample.com is not a valid name",
        ),
        ("https://localhost/x", "the host localhost is a local name"),
        ("https://api.localhost/x", "the host api.localhost is a local name"),
        ("https://printer.local/x", "the host printer.local is a local name"),
        (
            "https://redis/x",
            "the host redis is a single-label name; use a fully qualified name",
        ),
    ],
)
def test_rejected_urls(url: str, reason: str) -> None:
    with pytest.raises(InvalidWebhookUrlError) as raised:
        validate_webhook_url(url, HTTPS_ONLY)

    assert raised.value.reason == reason
    assert raised.value.code == "invalid-webhook-url"
    assert raised.value.http_status == 422
    assert raised.value.details == [{"field": "webhook_url", "message": reason}]


def test_malformed_port_rejected() -> None:
    with pytest.raises(InvalidWebhookUrlError, match="malformed"):
        validate_webhook_url("https://hooks.example.com:99999/", HTTPS_ONLY)


def test_too_long_rejected() -> None:
    url = "https://hooks.example.com/" + "a" * 2048

    with pytest.raises(InvalidWebhookUrlError, match="longer than 2048"):
        validate_webhook_url(url, HTTPS_ONLY)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://Hooks.Example.com/p?q=1", "https://hooks.example.com/p?q=1"),
        ("HTTPS://hooks.example.com:8443/p", "https://hooks.example.com:8443/p"),
        ("https://93.184.216.34/hook#frag", "https://93.184.216.34/hook"),
        ("https://[2606:4700::1111]/x", "https://[2606:4700::1111]/x"),
    ],
)
def test_accepted_urls(url: str, normalised: str) -> None:
    assert validate_webhook_url(url, HTTPS_ONLY) == normalised


def test_http_needs_setting() -> None:
    url = "http://hooks.example.com/x"

    assert validate_webhook_url(url, WITH_HTTP) == url


def test_allowed_hosts_bypass_address_rules() -> None:
    settings = Settings(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])

    assert validate_webhook_url("http://127.0.0.1:9000/h", settings) == (
        "http://127.0.0.1:9000/h"
    )
    with pytest.raises(InvalidWebhookUrlError, match="is a loopback address"):
        validate_webhook_url("http://127.0.0.2/h", settings)


def test_allowed_networks_admit_addresses() -> None:
    settings = Settings(WEBHOOK_ALLOWED_HOSTS=["10.20.0.0/16", "hooks.internal"])

    assert validate_webhook_url("https://10.20.3.4/h", settings) == (
        "https://10.20.3.4/h"
    )
    assert validate_webhook_url("https://HOOKS.internal./h", settings) == (
        "https://hooks.internal/h"
    )
    with pytest.raises(InvalidWebhookUrlError, match="is a private address"):
        validate_webhook_url("https://10.21.0.1/h", settings)


def test_idn_host_encoded() -> None:
    assert validate_webhook_url("https://bücher.example/h", HTTPS_ONLY) == (
        "https://xn--bcher-kva.example/h"
    )
