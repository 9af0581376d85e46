"""HTTP metrics: ``RequestMetrics`` counts and times every request by its route's template
(``GET /metrics`` itself is in ``api.routes.metrics``).

A route that relays a backend (chat) tells how much of its wait was the backend's by setting
``scope[BACKEND_S]`` before its response starts; the time to the response's first byte less
that is the gateway's overhead.
"""

from __future__ import annotations

from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyperlocal.prometheus import PrometheusMetrics

__all__ = ["BACKEND_S", "RequestMetrics"]

BACKEND_S = "hyperlocal.backend_s"
UNMATCHED = "unmatched"  # no route: never the path as sent, which anyone can vary


class RequestMetrics:
    """Pure ASGI, for the little it costs: two clock reads and two cached children a request."""

    def __init__(self, app: ASGIApp, metrics: PrometheusMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the server answers if the app raises

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                backend = scope.get(BACKEND_S)
                if backend is not None:
                    spent = perf_counter() - started - backend
                    self.metrics.gateway_overhead(_template(scope), spent)
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            seconds = perf_counter() - started
            self.metrics.http_request(_template(scope), scope["method"], status, seconds)


def _template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
