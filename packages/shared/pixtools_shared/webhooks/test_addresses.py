"""Tests of IP literal parsing and the forbidden address ranges."""

from __future__ import annotations

import ipaddress

import pytest

from pixtools_shared.webhooks.addresses import forbidden_reason, parse_host_literal


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("127.0.0.1..", "127.0.0.1"),
        ("0", "0.0.0.0"),  # noqa: S104 (an address under test, not a bind)
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("[fd00:ec2::254]", "fd00:ec2::254"),
        ("3232235521", "192.168.0.1"),
    ],
)
def test_literal_spellings(host: str, address: str) -> None:
    assert parse_host_literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "host", ["example.com", "deadbeef", "127.0.0.1 extra", "1.2.3.4.5", "", "[]", "."]
)
def test_names_are_not_literals(host: str) -> None:
    assert parse_host_literal(host) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.255.254", "a loopback address"),
        ("::1", "a loopback address"),
        ("0.0.0.0", "the unspecified address"),  # noqa: S104 (address under test)
        ("::", "the unspecified address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("100.127.255.254", "a carrier-grade NAT address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("255.255.255.255", "a private address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fec0::1", "a site-local address"),
        ("::ffff:127.0.0.1", "an IPv4-mapped IPv6 address"),
        ("::ffff:8.8.8.8", "an IPv4-mapped IPv6 address"),
        ("2002:7f00:1::1", "an IPv6 address that embeds a loopback address"),
        ("64:ff9b::a00:1", "an IPv6 address that embeds a private address"),
        ("2001::1", "a Teredo tunnel address"),
        ("192.0.2.10", "a private address"),
        ("::7f00:1", "a reserved address"),
    ],
)
def test_forbidden_addresses(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "2a00:1450:4001::1"]
)
def test_public_addresses_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_scoped_address_rejected() -> None:
    assert forbidden_reason(ipaddress.ip_address("fe80::1%eth0")) == (
        "an address with a zone index"
    )
