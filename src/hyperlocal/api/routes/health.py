"""Liveness and readiness; no auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from hyperlocal import __version__
from hyperlocal.api.deps import Svc

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(svc: Svc) -> dict[str, Any]:
    async with svc.db.read() as session:
        await session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}
