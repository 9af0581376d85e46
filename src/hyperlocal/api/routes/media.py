"""Videos (async, spec §5), audio (§7) and 3D (§8), plus the legacy ``/api/media/generate``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from hyperlocal.api.deps import Call, IdempotentCall
from hyperlocal.api.fast_route import FastRoute
from hyperlocal.api.routes._submit import run_or_accept, start_deadline
from hyperlocal.api.routes._views import accepted, json_response
from hyperlocal.api.schemas import JobAccepted
from hyperlocal.core.generation import SubmitRequest, submit
from hyperlocal.core.jobs import JobView
from hyperlocal.engines.base import Category
from hyperlocal.errors import ModelRequiredError

__all__ = ["legacy_router", "router"]

router = APIRouter(tags=["media"], route_class=FastRoute)
legacy_router = APIRouter(tags=["media"], route_class=FastRoute)


class GenerationBody(BaseModel):
    """``{"model", "input": {...}, "webhook_url", "retention"}``; a flat body with the input
    fields at the top level is accepted too, as legacy clients send it."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, examples=["sora-2-i2v"])
    input: dict[str, Any] | None = Field(None, examples=[{"prompt": "waves", "duration": 5}])
    webhook_url: str | None = None
    retention: int | None = Field(
        None,
        ge=1,
        description="Seconds to keep the outputs: shortens the server's retention, never "
        "lengthens it (a longer value keeps them for the server's time).",
    )

    def inputs(self) -> dict[str, Any]:
        return dict(self.input) if self.input is not None else dict(self.model_extra or {})


def _request(body: GenerationBody, call: Call, categories: tuple[Category, ...]) -> SubmitRequest:
    if not body.model:
        raise ModelRequiredError
    return SubmitRequest(
        key=call.key,
        model=body.model,
        categories=categories,
        inputs=body.inputs(),
        webhook_url=body.webhook_url,
        idempotency_key=call.idempotency_key,
        retention=body.retention,
        start_deadline=start_deadline(call.request),
    )


def media_response(job: JobView) -> BaseModel:
    """``{"success": true, "outputUrl", "creditsUsed"}``, plus what the engine reported:
    ``duration`` for audio, ``text``/``segments`` for ASR, ``similarity`` for voice clone."""
    body: dict[str, Any] = {"success": True, "jobId": job.id, "outputUrl": job.output_url}
    for name in ("text", "duration", "segments"):
        if job.result.get(name) not in (None, [], ""):
            body[name] = job.result[name]
    body.update(job.result.get("extra") or {})
    body["creditsUsed"] = job.credits
    return _Loose(**body)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


_ACCEPTED = {202: {"model": JobAccepted, "description": "Accepted as a job"}}


@router.post("/videos/generate", status_code=202, response_model=JobAccepted)
async def generate_video(body: GenerationBody, call: IdempotentCall) -> Response:
    job = await submit(call.svc, _request(body, call, (Category.VIDEO,)))
    return json_response(call, accepted(call.svc.settings, job), 202)


def _sync_generate(categories: tuple[Category, ...]) -> Callable[..., Awaitable[Any]]:
    """One handler shape for the synchronous media routes; they differ in what they accept."""

    async def generate(body: GenerationBody, call: IdempotentCall) -> Any:
        req = _request(body, call, categories)
        return await run_or_accept(call, req, media_response)

    return generate


router.post("/audio/generate", responses=_ACCEPTED, name="generate_audio")(  # type: ignore[arg-type]
    _sync_generate((Category.AUDIO,))
)
router.post("/3d/generate", responses=_ACCEPTED, name="generate_3d")(  # type: ignore[arg-type]
    _sync_generate((Category.THREE_D,))
)
legacy_router.post("/api/media/generate", responses=_ACCEPTED, name="legacy_generate")(  # type: ignore[arg-type]
    _sync_generate((Category.AUDIO, Category.THREE_D))
)
