"""Veo through the Gemini API (providers.md §4.2): ``predictLongRunning``, the operation polled
until done, its video downloaded through the Files API at the operator's base URL.

The Gemini API has no cancel for a Veo operation (the SDK offers none outside Vertex): a
CancelledError only stops our polling; Google finishes (and bills) it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
from google import genai
from google.genai import errors, types

from hyperlocal.engines.base import MediaInput
from hyperlocal.engines.providers._common import base64_text
from hyperlocal.engines.providers.base import (
    FailureKind,
    Payload,
    ProviderCall,
    ProviderError,
    ProviderOutput,
    ProviderResult,
    Watch,
    next_poll,
)
from hyperlocal.engines.providers.gemini._errors import TRANSIENT_CODES, translated
from hyperlocal.engines.providers.gemini._payload import media_of, text_of, whole_seconds

__all__ = ["Veo", "veo_body"]

log = logging.getLogger(__name__)

UNAVAILABLE, FAILED = FailureKind.UNAVAILABLE, FailureKind.FAILED
POLL_TIMEOUT_S = 30
_INFRA_CODES = (4, 13, 14)  # google.rpc.Code DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE
_FILE_ID = re.compile(r"(?:^|/)files/([A-Za-z0-9_-]+)")


class Veo:
    """Video calls for one key: ``api_root`` is the base URL with the API version."""

    def __init__(
        self, client: genai.Client, http: httpx.AsyncClient, api_root: str, poll_interval: float
    ) -> None:
        self._client = client
        self._http = http
        self._api_root = api_root
        self._poll_interval = poll_interval

    async def run(self, call: ProviderCall, watch: Watch) -> ProviderResult:
        name = await self._start(call)
        await watch.submitted(name)
        operation = types.GenerateVideosOperation.model_validate({"name": name})
        operation = await self._until_done(operation, watch)
        outputs = [await self._download(video, name) for video in _videos_of(operation)]
        return ProviderResult(outputs=outputs, request_id=name)

    async def _start(self, call: ProviderCall) -> str:
        """``predictLongRunning``, sent here: google-genai 3.x refuses ``generate_videos`` in
        Gemini API mode ("only supported in Gemini Enterprise Agent Platform mode") though the
        API serves it (providers.md §4.2). The SDK polls and downloads."""
        model = call.endpoint.removeprefix("models/")
        url = f"{self._api_root}/models/{model}:predictLongRunning"
        with translated():
            response = await self._http.post(url, json=veo_body(call.payload))
            await errors.APIError.raise_for_async_response(response)
        try:
            name = response.json().get("name")
        except (ValueError, AttributeError):
            name = None
        if not isinstance(name, str) or not name:
            raise ProviderError(UNAVAILABLE, "gemini: an operation without a name")
        return name

    async def _until_done(
        self, operation: types.GenerateVideosOperation, watch: Watch
    ) -> types.GenerateVideosOperation:
        name, delay = operation.name or "", self._poll_interval
        while not operation.done:
            await watch.wait(name, delay)
            delay = next_poll(delay)
            operation = await self._look(operation)
        return operation

    async def _look(
        self, operation: types.GenerateVideosOperation
    ) -> types.GenerateVideosOperation:
        """The operation as Google shows it now; after a hiccup worth polling through, as it was."""
        config = types.GetOperationConfig(http_options={"timeout": POLL_TIMEOUT_S * 1000})
        try:
            with translated(operation.name):
                return await self._client.aio.operations.get(operation, config=config)
        except ProviderError as exc:
            if exc.kind is not UNAVAILABLE or exc.status not in {None, *TRANSIENT_CODES}:
                raise
            log.warning("gemini poll failed", extra={"request_id": operation.name})
            return operation

    async def _download(self, video: types.Video, request_id: str) -> ProviderOutput:
        """The video's bytes: inline when Google sent them so, else through the Files API at our
        own base URL (the ``uri`` names Google's host, and the key goes nowhere else)."""
        content_type = video.mime_type or "video/mp4"
        if video.video_bytes:
            return ProviderOutput(data=video.video_bytes, content_type=content_type)
        found = _FILE_ID.search(video.uri or "")
        if found is None:
            message = f"gemini: a video at an unexpected address: {video.uri!r}"
            raise ProviderError(FAILED, message, request_id=request_id)
        with translated(request_id):
            data = await self._client.aio.files.download(file=f"files/{found.group(1)}")
        return ProviderOutput(data=data, content_type=content_type)


def veo_body(payload: Payload) -> dict[str, Any]:
    """As google-genai 2.x's ``_GenerateVideosParameters_to_mldev`` built it."""
    instance = {
        "prompt": text_of(payload, "prompt"),
        "image": _veo_image(media_of(payload, "image")),
        "lastFrame": _veo_image(media_of(payload, "last_frame", "lastFrame")),
    }
    parameters = {
        "aspectRatio": text_of(payload, "aspect_ratio", "aspectRatio"),
        "durationSeconds": whole_seconds(payload, "duration_seconds", "durationSeconds"),
        "resolution": text_of(payload, "resolution"),
        "negativePrompt": text_of(payload, "negative_prompt", "negativePrompt"),
    }
    return {"instances": [_present(instance)], "parameters": _present(parameters)}


def _veo_image(media: list[MediaInput]) -> dict[str, str] | None:
    if not media:
        return None
    return {"bytesBase64Encoded": base64_text(media[0].data), "mimeType": media[0].content_type}


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _videos_of(operation: types.GenerateVideosOperation) -> list[types.Video]:
    name, error = operation.name, operation.error
    if error:
        kind = UNAVAILABLE if error.get("code") in _INFRA_CODES else FAILED
        message = error.get("message") or f"the operation failed (code {error.get('code')})"
        raise ProviderError(kind, f"gemini: {message}", request_id=name)
    answer = operation.response or operation.result or types.GenerateVideosResponse()
    videos = [sample.video for sample in answer.generated_videos or [] if sample.video]
    if videos:
        return videos
    reasons = "; ".join(answer.rai_media_filtered_reasons or [])
    filtered = answer.rai_media_filtered_count or reasons
    why = f"filtered by Google's safety checks: {reasons}" if filtered else "none made"
    raise ProviderError(FAILED, f"gemini: no video ({why})", request_id=name)
