"""An httpcore network backend that connects only to a vetted address, on a deadline.

httpcore asks the backend for a TCP connection to the URL's host. This backend
ignores what that name resolves to now and connects to the addresses that
destinations.vet_destination checked. TLS still uses the host name for SNI and
certificate checks, and the Host header keeps it too.

Every socket operation (connect, TLS handshake, send, receive) gets the smaller
of httpcore's per-operation timeout and the time left before the attempt's
deadline. So a receiver that sends one byte a second cannot hold the worker
past the deadline, although no single read ever times out.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

from pixtools_shared.webhooks.deadline import Deadline
from pixtools_shared.webhooks.destinations import Destination


class DeadlineStream(httpcore.NetworkStream):
    """A socket whose every operation ends by the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._sock.settimeout(self._deadline.bound(timeout, httpcore.ReadTimeout))
        try:
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._sock.settimeout(self._deadline.bound(timeout, httpcore.WriteTimeout))
        try:
            # Since Python 3.5 the socket timeout bounds the whole sendall call.
            self._sock.sendall(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._sock.settimeout(self._deadline.bound(timeout, httpcore.ConnectTimeout))
        try:
            wrapped = ssl_context.wrap_socket(
                self._sock, server_hostname=server_hostname
            )
        except TimeoutError as exc:
            self._sock.close()
            raise httpcore.ConnectTimeout("the TLS handshake timed out") from exc
        except (ssl.SSLError, OSError) as exc:
            self._sock.close()
            raise httpcore.ConnectError(f"the TLS handshake failed: {exc}") from exc
        return DeadlineStream(wrapped, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object" and isinstance(self._sock, ssl.SSLSocket):
            return self._sock
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            readable, _, _ = select.select([self._sock], [], [], 0)
            return bool(readable)
        return None


class PinnedNetworkBackend(httpcore.NetworkBackend):
    """Connects to the destination's vetted addresses and nowhere else."""

    def __init__(self, destination: Destination, deadline: Deadline) -> None:
        self.destination = destination
        self.deadline = deadline
        self.connected_to: list[tuple[str, int]] = []
        """Addresses this backend opened connections to (for logs and tests)."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        destination = self.destination
        if host.lower().rstrip(".") != destination.host or port != destination.port:
            # Only a redirect or a proxy would ask for another origin, and
            # neither is used, so reject rather than resolve a new name.
            raise httpcore.ConnectError(
                f"rejected a connection to {host}:{port}, which was not vetted"
            )

        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in destination.addresses:
            seconds = self.deadline.bound(timeout, httpcore.ConnectTimeout)
            try:
                sock = socket.create_connection((str(address), port), timeout=seconds)
            except TimeoutError:
                failure = httpcore.ConnectTimeout(f"connecting to {address} timed out")
                continue
            except OSError as exc:
                failure = httpcore.ConnectError(
                    f"connecting to {address} failed: {exc}"
                )
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connected_to.append((str(address), port))
            return DeadlineStream(sock, self.deadline)

        assert failure is not None, "a destination has at least one address"
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks do not use Unix sockets")

    def sleep(self, seconds: float) -> None:
        # httpcore sleeps only between its own retries, which are turned off.
        raise httpcore.ConnectError("webhook connections are not retried inline")
