"""Resolve a webhook URL's host once and vet every address before any connection.

The delivery then connects only to the vetted addresses (see transport.py), so
a name that resolves to a public address here cannot be switched to an
internal one between the check and the connection (DNS rebinding).

WEBHOOK_ALLOWED_HOSTS entries are host names (exact, case-insensitive), IP
addresses or CIDR networks. A listed name may resolve to any address, and a
listed address or network may be reached under any name.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from pixtools_shared.webhooks.addresses import (
    IPAddress,
    forbidden_reason,
    parse_host_literal,
)
from pixtools_shared.webhooks.deadline import Deadline

# Takes (host, port) and returns the host's addresses as strings.
Resolver = Callable[[str, int], Sequence[str]]

DEFAULT_PORTS = {"http": 80, "https": 443}

# DNS lookups run in a pool so that a lookup can be abandoned at the deadline;
# the lookup itself keeps its thread until the system resolver gives up. The
# pool is made per process, because threads do not survive a fork.
_lookup_pools: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
LOOKUP_THREADS = 4


class DestinationRejectedError(Exception):
    """The URL targets an address that webhooks must not reach (not retried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResolutionError(Exception):
    """The host name could not be resolved in time (retried)."""


@dataclass(frozen=True)
class Destination:
    """A vetted target: the URL's host and port and the addresses to connect to."""

    scheme: str
    host: str
    """Lower-case host without brackets or trailing dots, as sent in SNI/Host."""
    port: int
    addresses: tuple[IPAddress, ...]
    target: str
    """Path and query of the request line."""

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class AllowList:
    """The parsed WEBHOOK_ALLOWED_HOSTS setting."""

    names: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        names: set[str] = set()
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError:
                names.add(text)
        return cls(frozenset(names), tuple(networks))

    def admits_name(self, host: str) -> bool:
        return host in self.names

    def admits_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver; TCP addresses, in its order."""
    results = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in results:
        text = str(sockaddr[0])
        if text not in addresses:
            addresses.append(text)
    return addresses


def _lookup(
    host: str, port: int, resolver: Resolver, deadline: Deadline
) -> list[IPAddress]:
    pool = _lookup_pools.get(os.getpid())
    if pool is None:
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=LOOKUP_THREADS, thread_name_prefix="webhook-dns"
        )
        _lookup_pools[os.getpid()] = pool
    future = pool.submit(resolver, host, port)
    try:
        answers = future.result(timeout=max(deadline.remaining(), 0.0))
    except concurrent.futures.TimeoutError:
        raise ResolutionError(f"the DNS lookup of {host} timed out") from None
    except (OSError, UnicodeError) as exc:
        raise ResolutionError(f"the DNS lookup of {host} failed ({exc})") from None

    addresses: list[IPAddress] = []
    for answer in answers:
        address = ipaddress.ip_address(answer)
        addresses.append(address)
    if not addresses:
        raise ResolutionError(f"the DNS lookup of {host} returned no address")
    return addresses


def _check_addresses(
    host: str, addresses: Sequence[IPAddress], allow_list: AllowList
) -> None:
    for address in addresses:
        if allow_list.admits_address(address):
            continue
        reason = forbidden_reason(address)
        if reason is not None:
            if parse_host_literal(host) is not None:
                raise DestinationRejectedError(f"the host {host} is {reason}")
            raise DestinationRejectedError(
                f"the host {host} resolves to {address}, {reason}"
            )


def _request_target(path: str, query: str) -> str:
    target = path or "/"
    if query:
        target = f"{target}?{query}"
    # Percent-encode what is not ASCII; the request line is ASCII only.
    return "".join(
        char if ord(char) < 0x80 else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in target
    )


def vet_destination(
    url: str,
    allow_list: AllowList,
    deadline: Deadline,
    resolver: Resolver = system_resolver,
) -> Destination:
    """Parse ``url``, resolve its host once and check every address.

    Raises DestinationRejectedError when any address is not allowed and
    ResolutionError when the name does not resolve before ``deadline``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise DestinationRejectedError(f"the scheme {scheme!r} is not allowed")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise DestinationRejectedError("the URL has an invalid port") from None
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise DestinationRejectedError("the URL has no host")

    literal = parse_host_literal(host)
    if literal is not None:
        addresses = [literal]
        host = str(literal)
    else:
        addresses = _lookup(host, port, resolver, deadline)

    if not allow_list.admits_name(host):
        _check_addresses(host, addresses, allow_list)

    return Destination(
        scheme=scheme,
        host=host,
        port=port,
        addresses=tuple(addresses),
        target=_request_target(parts.path, parts.query),
    )
