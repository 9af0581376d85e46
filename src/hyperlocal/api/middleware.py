"""Pure ASGI middleware: the request body limit, enforced while the body streams in."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "BodyTooLargeHTTPError"]


class BodyTooLargeHTTPError(HTTPException):
    """Raised from ``receive``. An HTTPException, because FastAPI re-raises those from body
    parsing (any other exception there becomes a generic 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "Request body too large")
        self.limit = limit


class BodyLimitMiddleware:
    """Answer 413 when Content-Length, or the bytes actually sent, pass ``limit``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared(scope) > self.limit:
            await self._reject(send)
            return
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._counting(receive), guarded_send)
        except BodyTooLargeHTTPError:
            if not started:
                await self._reject(send)

    def _declared(self, scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLargeHTTPError(self.limit)
            return message

        return counted

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"error": "Request body too large", "limit": self.limit}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
