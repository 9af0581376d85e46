"""The chat relay benchmark's floor: a bare Starlette endpoint relaying to the same upstream
with the same HTTP client (aiohttp), and nothing else: no key, no charge, no job, no checks.

Run by uvicorn as ``_bare_relay:create --factory``, with ``BENCH_UPSTREAM`` (the upstream's
base URL). It renames the model, sends the body on, and hands the answer back: whole, or
streamed chunk by chunk as it arrives. What hyperlocal adds beyond this is its own cost.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

__all__ = ["create"]


def create() -> Starlette:
    url = os.environ["BENCH_UPSTREAM"].rstrip("/") + "/v1/chat/completions"
    sessions: list[aiohttp.ClientSession] = []  # made on first use, on the server's loop

    def client() -> aiohttp.ClientSession:
        if not sessions:
            sessions.append(aiohttp.ClientSession(trust_env=False))
        return sessions[0]

    async def relay(request: Request) -> Response:
        body = await request.json()
        body["model"] = "fake"
        if not body.get("stream"):
            async with client().post(url, json=body) as upstream:
                data = await upstream.read()
            return Response(data, upstream.status, media_type="application/json")
        upstream = await client().post(url, json=body)

        async def chunks() -> AsyncIterator[bytes]:
            async with upstream:
                async for chunk in upstream.content.iter_any():
                    yield chunk

        return StreamingResponse(chunks(), upstream.status, media_type="text/event-stream")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        for session in sessions:
            await session.close()

    routes = [Route("/v1/chat/completions", relay, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)
