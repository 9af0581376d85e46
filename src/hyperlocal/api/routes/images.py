"""Images: synchronous generate and edit (spec §4)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from hyperlocal.api.deps import IdempotentCall
from hyperlocal.api.fast_route import FastRoute
from hyperlocal.api.routes._submit import run_or_accept, start_deadline
from hyperlocal.api.routes._views import image_response
from hyperlocal.api.schemas import ImageEditBody, ImageGenerateBody, ImageResponse, JobAccepted
from hyperlocal.core.generation import SubmitRequest
from hyperlocal.engines.base import Category
from hyperlocal.errors import ModelRequiredError

router = APIRouter(tags=["images"], route_class=FastRoute)

DEFAULT_IMAGE_MODEL = "gemini-3-1-flash-t2i"
_NOT_INPUTS = {"model", "webhook_url", "retention"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": JobAccepted, "description": "Accepted as a job"}
}


def _model(value: str | None, default: str | None = None) -> str:
    model = default if value is None and default else value
    if not model:
        raise ModelRequiredError
    return model


@router.post("/images/generate", response_model=ImageResponse, responses=_RESPONSES)
async def generate_image(body: ImageGenerateBody, call: IdempotentCall) -> Response:
    req = SubmitRequest(
        key=call.key,
        model=_model(body.model, DEFAULT_IMAGE_MODEL),
        categories=(Category.IMAGE,),
        inputs=body.model_dump(exclude_none=True, exclude=_NOT_INPUTS),
        webhook_url=body.webhook_url,
        idempotency_key=call.idempotency_key,
        retention=body.retention,
        start_deadline=start_deadline(call.request),
    )
    return await run_or_accept(call, req, image_response)


@router.post("/images/edit", response_model=ImageResponse, responses=_RESPONSES)
async def edit_image(body: ImageEditBody, call: IdempotentCall) -> Response:
    req = SubmitRequest(
        key=call.key,
        model=_model(body.model),
        categories=(Category.IMAGE_EDIT,),
        inputs=body.model_dump(exclude_none=True, exclude=_NOT_INPUTS),
        webhook_url=body.webhook_url,
        idempotency_key=call.idempotency_key,
        retention=body.retention,
        start_deadline=start_deadline(call.request),
    )
    return await run_or_accept(call, req, image_response)
