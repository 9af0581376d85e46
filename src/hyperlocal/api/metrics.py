"""HTTP metrics: ``RequestMetrics`` counts and times every request by its route's template
(``GET /metrics`` itself is in ``api.routes.metrics``).

A route that relays a backend (chat) tells how much of its wait was the backend's by setting
``scope[BACKEND_S]`` before its response starts; the time to the response's first byte less
that is the gateway's overhead.
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyperlocal.prometheus import PrometheusMetrics

__all__ = ["BACKEND_S", "RequestMetrics"]

BACKEND_S = "hyperlocal.backend_s"
UNMATCHED = "unmatched"  # no route: never the path as sent, which anyone can vary


class RequestMetrics:
    """Pure ASGI, for the little it costs: three clock reads and one record a request. The
    wrapped ``send`` is a plain function returning ``send``'s awaitable, not a coroutine of
    its own: a streamed reply's every event passes through it."""

    def __init__(self, app: ASGIApp, metrics: PrometheusMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the server answers if the app raises
        answered: float | None = None  # when the response started

        def counted(message: Message) -> Awaitable[None]:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], perf_counter()
            return send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            seconds = perf_counter() - started
            backend = scope.get(BACKEND_S)
            overhead = None
            if backend is not None and answered is not None:
                overhead = answered - started - backend
            route = getattr(scope.get("route"), "path", None)  # its template
            route = route if isinstance(route, str) else UNMATCHED
            self.metrics.http_request(route, scope["method"], status, seconds, overhead)
