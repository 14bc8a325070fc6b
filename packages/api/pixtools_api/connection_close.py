"""Close the connection after a response sent before the request body was read.

A request rejected early (401, 413 from Content-Length, 429, 503, 408) leaves
its body unread. Without ``Connection: close``, uvicorn keeps the connection
and reads the rest of the body to discard it, so a client could make the
server receive gigabytes it already rejected. With the header, uvicorn closes
the connection after the response and the client stops sending (RFC 9110
allows closing the connection after a 413).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
    return False


class CloseUnreadBodyMiddleware:
    """Adds ``Connection: close`` to responses that start before the body ended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return

        body_finished = False

        async def receive_tracked() -> Message:
            nonlocal body_finished
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get(
                "more_body", False
            ):
                body_finished = True
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_finished:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive_tracked, send_closing)
