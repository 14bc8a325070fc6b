"""Which IP addresses a webhook may reach, and reading IP literals in every spelling.

A URL host such as ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1`` or
``0`` is an IPv4 address to the C resolver (inet_aton rules), although
``ipaddress.ip_address`` rejects those forms. ``parse_host_literal`` reads them
the way the resolver would, so none of them can pass for a host name.
"""

from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Characters of the numeric IPv4 forms inet_aton accepts (decimal, octal, hex).
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")

# Shared address space of carrier-grade NAT (RFC 6598). Python's ipaddress does
# not count it as private, only as not global.
CARRIER_GRADE_NAT = ipaddress.IPv4Network("100.64.0.0/10")

# NAT64 prefixes (RFC 6052, RFC 8215): the last 32 bits are an IPv4 address.
NAT64_NETWORKS = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)

# Instance metadata services of the big clouds. They fall in link-local, unique
# local, shared or reserved ranges anyway; naming them gives a clearer reason.
CLOUD_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.IPv4Address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.IPv6Address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.IPv4Address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.IPv4Address("192.0.0.192"),  # Oracle Cloud
    }
)


def parse_host_literal(host: str) -> IPAddress | None:
    """Return the IP address that ``host`` spells, or None when it is a name.

    Accepts brackets around IPv6, trailing dots, IPv6 zone ids and the short,
    decimal, octal and hex IPv4 forms.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.rstrip(".")
    if not text:
        return None

    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass

    # inet_aton also accepts trailing garbage after a space, so it only sees
    # strings made of the characters of numeric forms.
    if not _NUMERIC_HOST.fullmatch(text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    for network in NAT64_NETWORKS:
        if address in network:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Return why a webhook must not connect to ``address``; None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address.teredo is not None:
            return "a Teredo tunnel address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            if inner is not None:
                return f"an IPv6 address that embeds {inner}"
        if address.scope_id:
            return "an address with a zone index"

    if address in CLOUD_METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in CARRIER_GRADE_NAT:
        return "a carrier-grade NAT address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_private:
        # Includes IPv6 unique local addresses (fc00::/7).
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None
