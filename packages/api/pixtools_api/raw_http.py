"""A minimal HTTP/1.1 client over a raw socket, for tests that need control over
how the request body is sent: with or without Content-Length, chunked, slowly.

The body is sent from a background thread while the response is read, so a
server that responds before reading the whole body (413, 408) is observed
as it does it. Only test modules import this.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    """Time from the first byte sent to the end of the response."""
    bytes_sent: int = 0
    send_error: str | None = None


@dataclass
class _Sender:
    sock: socket.socket
    chunks: Iterable[bytes]
    chunked: bool
    sent: int = 0
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            for chunk in self.chunks:
                if self.chunked:
                    self.sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                else:
                    self.sock.sendall(chunk)
                self.sent += len(chunk)
            if self.chunked:
                self.sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()


def multipart_parts(
    boundary: str,
    fields: dict[str, str],
    file_name: str,
    file_chunks: Iterable[bytes],
) -> Iterator[bytes]:
    """Yield a multipart/form-data body: text fields, then the streamed file."""
    for name, value in fields.items():
        yield (
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{file_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    yield from file_chunks
    yield f"\r\n--{boundary}--\r\n".encode()


def repeated_chunks(total: int, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """Yield ``total`` bytes of filler in chunks."""
    chunk = b"\xab" * chunk_size
    remaining = total
    while remaining > 0:
        size = min(chunk_size, remaining)
        yield chunk[:size]
        remaining -= size


def slow_chunks(pieces: Iterable[bytes], interval: float) -> Iterator[bytes]:
    for piece in pieces:
        yield piece
        time.sleep(interval)


def send_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Iterable[bytes] = (),
    *,
    chunked: bool = False,
    timeout: float = 60.0,
) -> RawResponse:
    """Send one request to 127.0.0.1:``port`` and read the response."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    started = time.monotonic()
    try:
        sock.sendall(head)
        sender = _Sender(sock, body, chunked)
        thread = threading.Thread(target=sender.run, daemon=True)
        thread.start()
        status, response_headers, response_body = _read_response(sock)
        seconds = time.monotonic() - started
        sender_done = sender.done.wait(timeout=5)
        return RawResponse(
            status,
            response_headers,
            response_body,
            seconds,
            bytes_sent=sender.sent,
            send_error=sender.error if sender_done else "still sending",
        )
    finally:
        sock.close()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"connection closed before the response: {buffer!r}")
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()

    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return status, headers, rest[:length]
