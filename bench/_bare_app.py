"""The baseline of the images benchmark: a bare Starlette endpoint doing the same file write.

Run by uvicorn as ``_bare_app:create --factory``. It parses the same JSON body, writes the same
PNG under a random name (write, then rename, in a thread, as hyperlocal's LocalStorage does)
and answers with a response of the same shape. ``BENCH_PNG``, ``BENCH_BARE_DIR`` and
``BENCH_PUBLIC_URL`` come from ``images.py``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["create"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def create() -> Starlette:
    png = Path(os.environ["BENCH_PNG"]).read_bytes()
    root = Path(os.environ["BENCH_BARE_DIR"])
    public_url = os.environ["BENCH_PUBLIC_URL"].rstrip("/")

    async def generate(request: Request) -> JSONResponse:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return JSONResponse({"error": "prompt is required"}, status_code=422)
        result_id = "res_" + secrets.token_hex(12)
        await asyncio.to_thread(_write, root / "images" / f"{result_id}.png", png)
        url = f"{public_url}/files/images/{result_id}.png"
        return JSONResponse(
            {
                "created": int(time.time()),
                "data": [{"url": url, "model": str(body.get("model") or "bare")}],
                "resultId": result_id,
                "creditsUsed": 0,
            }
        )

    return Starlette(routes=[Route("/v1/images/generate", generate, methods=["POST"])])
