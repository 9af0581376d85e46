"""The chat relay benchmark's floor: a bare Starlette endpoint relaying to the same upstream
with the same HTTP client (hyperlocal's ``engines/chat/http1``), and nothing else: no key, no
charge, no job, no checks.

Run by uvicorn as ``_bare_relay:create --factory``, with ``BENCH_UPSTREAM`` (the upstream's
base URL). It renames the model, sends the body on, and hands the answer back: whole, or
streamed chunk by chunk as it arrives. What hyperlocal adds beyond this is its own cost.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from yarl import URL

from hyperlocal.engines.chat.http1 import Client

__all__ = ["create"]

TIMEOUT_S = 60.0


def create() -> Starlette:
    url = URL(os.environ["BENCH_UPSTREAM"].rstrip("/") + "/v1/chat/completions")
    clients: list[Client] = []  # made on first use, on the server's loop

    def client() -> Client:
        if not clients:
            clients.append(Client())
        return clients[0]

    async def relay(request: Request) -> Response:
        body = await request.json()
        body["model"] = "fake"
        data = json.dumps(body).encode()
        upstream = await client().post(url, data, {}, timeout=TIMEOUT_S)
        if not body.get("stream"):
            async with upstream:
                whole = await upstream.read()
            return Response(whole, upstream.status, media_type="application/json")

        async def chunks() -> AsyncIterator[bytes]:
            async with upstream:
                async for chunk in upstream.chunks():
                    yield chunk

        return StreamingResponse(chunks(), upstream.status, media_type="text/event-stream")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        for each in clients:
            await each.aclose()

    routes = [Route("/v1/chat/completions", relay, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)
