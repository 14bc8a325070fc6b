"""HTTP servers on 127.0.0.1 for the webhook tests: scripted receivers and canaries.

A ``ScriptedServer`` records every request it receives and responds from a
script of ``Reply`` values (the last one repeats). A canary is a scripted server
that should never be reached; tests assert that its ``hits`` stay 0.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Reply:
    """How the server responds to one request."""

    status: int = 200
    delay_seconds: float = 0.0
    """Wait before the status line."""
    location: str | None = None
    """Location header (for redirects)."""
    dribble_seconds: float | None = None
    """Send the response one byte per this many seconds, never finishing."""
    retry_after: str | None = None


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int] = field(default=("", 0))


class ScriptedServer:
    """A threading HTTP server on 127.0.0.1 and a free port."""

    def __init__(
        self,
        replies: list[Reply] | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.replies = list(replies or [Reply()])
        self.requests: list[ReceivedRequest] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                with server._lock:
                    server.connections += 1
                super().setup()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append(
                        ReceivedRequest(
                            self.command,
                            self.path,
                            dict(self.headers.items()),
                            body,
                            self.client_address[:2],
                        )
                    )
                    index = min(len(server.requests), len(server.replies)) - 1
                    reply = server.replies[index]
                server._answer(self, reply)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls_context is not None:
            self._server.socket = tls_context.wrap_socket(
                self._server.socket, server_side=True
            )
        # A short poll interval makes shutdown() return quickly.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def _answer(
        self, handler: http.server.BaseHTTPRequestHandler, reply: Reply
    ) -> None:
        if reply.delay_seconds:
            self._stopping.wait(reply.delay_seconds)
        if reply.dribble_seconds is not None:
            self._dribble(handler.wfile, reply.dribble_seconds)
            return
        handler.send_response(reply.status)
        if reply.location is not None:
            handler.send_header("Location", reply.location)
        if reply.retry_after is not None:
            handler.send_header("Retry-After", reply.retry_after)
        handler.send_header("Content-Length", "0")
        handler.send_header("Connection", "close")
        handler.end_headers()

    def _dribble(self, stream: Any, interval: float) -> None:
        # A status line that never ends: one byte at a time until stopped or
        # the client goes away.
        payload = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000
        for index in range(len(payload)):
            if self._stopping.wait(interval):
                return
            try:
                stream.write(payload[index : index + 1])
                stream.flush()
            except OSError:
                return

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def hits(self) -> int:
        """Requests received plus connections that sent no complete request."""
        with self._lock:
            return max(len(self.requests), self.connections)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def wait_for(condition: Any, timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def is_loopback_target(address: Any) -> bool:
    """Tell whether a socket address tuple points at a loopback address."""
    if not isinstance(address, tuple) or not address:
        return False
    host = str(address[0])
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


class OutboundGuard:
    """Records every socket connect and rejects those that leave the machine.

    Installed by the ``outbound_guard`` fixture on ``socket.socket.connect`` and
    ``connect_ex``, so a test that tried to reach any non-loopback address fails
    with the target listed instead of sending a packet.
    """

    def __init__(self) -> None:
        self.attempts: list[tuple[Any, ...]] = []
        self.refused: list[tuple[Any, ...]] = []

    def check(self, address: Any) -> None:
        self.attempts.append(address)
        if not is_loopback_target(address):
            self.refused.append(address)
            raise ConnectionRefusedError(
                f"the test outbound guard refused a connection to {address!r}"
            )


def install_outbound_guard(monkeypatch: Any) -> OutboundGuard:
    guard = OutboundGuard()
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            guard.check(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            guard.check(address)
        return original_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return guard


def self_signed_certificate(host_name: str, folder: Any) -> tuple[str, str]:
    """Write a self-signed certificate for ``host_name``; return (cert, key) paths."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = Path(folder) / "cert.pem"
    key_path = Path(folder) / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)
