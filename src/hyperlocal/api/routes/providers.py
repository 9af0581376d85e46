"""Webhooks from providers (fal, Replicate, ...): no bearer key; the signature is the proof."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from hyperlocal.api.deps import Svc
from hyperlocal.core.providers import receive_webhook

router = APIRouter(tags=["providers"])


@router.post("/providers/{name}/webhook", status_code=204, include_in_schema=False)
async def provider_webhook(name: str, request: Request, svc: Svc) -> Response:
    await receive_webhook(svc, name, request.headers, await request.body())
    return Response(status_code=204)
