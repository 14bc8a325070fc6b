"""Tests of resolving and vetting a webhook destination."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence

import pytest

from pixtools_shared.webhooks.deadline import Deadline
from pixtools_shared.webhooks.destinations import (
    AllowList,
    DestinationRejectedError,
    ResolutionError,
    vet_destination,
)

NO_ALLOW_LIST = AllowList.parse([])


class RecordingResolver:
    """Resolves names from a table and records each lookup."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = answers
        self.lookups: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append((host, port))
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        return self.answers[host]


def vet(url: str, resolver: RecordingResolver, allow: list[str] | None = None):  # type: ignore[no-untyped-def]
    return vet_destination(url, AllowList.parse(allow or []), Deadline(5), resolver)


def test_public_name_vetted() -> None:
    resolver = RecordingResolver({"hooks.example.com": ["93.184.216.34"]})

    destination = vet("https://Hooks.Example.com./in?x=1", resolver)

    assert destination.host == "hooks.example.com"
    assert destination.port == 443
    assert destination.addresses == (ipaddress.ip_address("93.184.216.34"),)
    assert destination.target == "/in?x=1"
    assert destination.host_header == "hooks.example.com"
    assert resolver.lookups == [("hooks.example.com", 443)]


def test_name_resolving_to_loopback_rejected() -> None:
    resolver = RecordingResolver({"rebind.example.com": ["127.0.0.1"]})

    with pytest.raises(DestinationRejectedError) as raised:
        vet("https://rebind.example.com/", resolver)

    assert raised.value.reason == (
        "the host rebind.example.com resolves to 127.0.0.1, a loopback address"
    )


def test_any_private_answer_rejects() -> None:
    # One public and one internal answer: the connection could pick either.
    resolver = RecordingResolver({"mixed.example.com": ["93.184.216.34", "10.0.0.7"]})

    with pytest.raises(
        DestinationRejectedError, match=r"10\.0\.0\.7, a private address"
    ):
        vet("https://mixed.example.com/", resolver)


def test_literal_not_looked_up() -> None:
    resolver = RecordingResolver({})

    with pytest.raises(DestinationRejectedError, match="a loopback address"):
        vet("http://2130706433:8080/", resolver)

    assert resolver.lookups == []


def test_allow_listed_name_skips_address_checks() -> None:
    resolver = RecordingResolver({"receiver.internal": ["10.1.2.3"]})

    destination = vet(
        "http://receiver.internal:9000/h", resolver, ["receiver.internal"]
    )

    assert destination.addresses == (ipaddress.ip_address("10.1.2.3"),)
    assert destination.host_header == "receiver.internal:9000"


def test_allow_listed_network_admits_address() -> None:
    resolver = RecordingResolver({"svc.example.com": ["10.1.2.3"]})

    destination = vet("https://svc.example.com/", resolver, ["10.1.0.0/16"])

    assert destination.addresses == (ipaddress.ip_address("10.1.2.3"),)
    with pytest.raises(DestinationRejectedError):
        vet("https://svc.example.com/", resolver, ["10.2.0.0/16"])


def test_lookup_failure_is_resolution_error() -> None:
    with pytest.raises(
        ResolutionError, match=r"DNS lookup of gone\.example\.com failed"
    ):
        vet("https://gone.example.com/", RecordingResolver({}))


def test_slow_lookup_cut_at_deadline() -> None:
    def slow(host: str, port: int) -> list[str]:
        time.sleep(2)
        return ["93.184.216.34"]

    started = time.monotonic()
    with pytest.raises(ResolutionError, match="timed out"):
        vet_destination("https://slow.example.com/", NO_ALLOW_LIST, Deadline(0.3), slow)

    assert time.monotonic() - started < 1.5


def test_ipv6_literal_host_header() -> None:
    destination = vet("https://[2606:4700::1111]:8443/x", RecordingResolver({}))

    assert destination.host == "2606:4700::1111"
    assert destination.host_header == "[2606:4700::1111]:8443"


def test_non_ascii_path_percent_encoded() -> None:
    resolver = RecordingResolver({"hooks.example.com": ["93.184.216.34"]})

    destination = vet("https://hooks.example.com/ä?q=ö", resolver)

    assert destination.target == "/%C3%A4?q=%C3%B6"
