"""OpenAI (providers.md §3): GPT images, Sora 2 videos and Whisper speech recognition, through
the official ``openai`` SDK with its own retries off (retries, failover and the 429 budget are
the router's).

- **Images** are synchronous. ``/v1/images/generations`` takes JSON; ``/v1/images/edits`` takes
  the images (and an optional ``mask``) as multipart files, for an ``image_edit`` call or an
  ``image`` call that carries reference images in ``image``. GPT image models always answer
  base64, so the bytes themselves are the output.
- **Videos** (Sora 2; OpenAI shuts the Videos API down on 2026-09-24) are jobs: ``POST
  /v1/videos`` (multipart, ``input_reference`` as a file), polled at ``GET /v1/videos/{id}``
  after the pause its ``openai-poll-after-ms`` header asks for, then fetched with the key from
  ``/content?variant=video``. OpenAI has no ``video.*`` webhook event (§3.4): only polling
  sees the end, so ``call.webhook_url`` is not sent anywhere.
- **Speech recognition** (``whisper-1``): ``/v1/audio/transcriptions`` as ``verbose_json`` with
  segment timestamps.

Payload fields other than the media and ``prompt`` reach OpenAI as they are (``extra_body``),
so a route's ``set`` and ``map`` need no change here to send a new field.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import mimetypes
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import openai
from openai.types import Image, ImagesResponse, Video

from hyperlocal.engines.base import Category, MediaInput, Segment
from hyperlocal.engines.providers._common import retry_after_seconds
from hyperlocal.engines.providers.base import (
    CANCEL_TIMEOUT_S,
    MAX_POLL_S,
    FailureKind,
    Payload,
    ProviderCall,
    ProviderContext,
    ProviderError,
    ProviderOutput,
    ProviderResult,
    Watch,
    WebhookNotice,
    next_poll,
)

__all__ = ["OpenAIProvider", "create"]

log = logging.getLogger(__name__)

KEY_ENV = "OPENAI_API_KEY"
DEFAULT_VIDEO_SIZE = "720x1280"  # the Videos API's own default
_IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# Whisper tells the audio's format by the file name's extension.
# fmt: off
_EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp",
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/wav": "wav", "audio/x-wav": "wav",
    "audio/wave": "wav", "audio/flac": "flac", "audio/x-flac": "flac", "audio/ogg": "ogg",
    "audio/mp4": "m4a", "audio/x-m4a": "m4a", "audio/webm": "webm",
    "video/mp4": "mp4", "video/webm": "webm",
}
# fmt: on

Media = MediaInput | list[MediaInput]
FileTuple = tuple[str, bytes, str]
T = TypeVar("T")


def create(context: ProviderContext) -> OpenAIProvider:
    return OpenAIProvider(context)


class OpenAIProvider:
    """Runs image, video and speech-recognition calls against OpenAI's API at
    ``context.base_url`` (with ``/v1``) with ``context.key``."""

    name: ClassVar[str] = "openai"

    def __init__(self, context: ProviderContext) -> None:
        # The SDK brings its own HTTP client (httpx2 since openai 3), so ``context.http`` cannot
        # be handed to it; this one is closed in ``aclose``.
        self._client = openai.AsyncOpenAI(
            api_key=context.key, base_url=context.base_url, max_retries=0
        )
        self._poll_interval = context.poll_interval

    async def run(self, call: ProviderCall, watch: Watch) -> ProviderResult:
        try:
            return await self._dispatch(call, watch)
        except openai.OpenAIError as exc:
            raise _failure(exc) from exc

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNotice:  # noqa: ARG002
        raise ProviderError(
            FailureKind.INVALID,
            "OpenAI sends no job webhooks (it has no video.* event): its videos are polled",
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def _dispatch(self, call: ProviderCall, watch: Watch) -> ProviderResult:
        match call.category:
            case Category.IMAGE | Category.IMAGE_EDIT:
                return await self._image(call)
            case Category.VIDEO:
                return await self._video(call, watch)
            case Category.AUDIO:
                return await self._transcribe(call)
        raise ProviderError(FailureKind.INVALID, f"OpenAI serves no {call.category} jobs")

    # --- images -------------------------------------------------------------------------------

    async def _image(self, call: ProviderCall) -> ProviderResult:
        media, body = _split(call.payload)
        prompt = str(body.pop("prompt", ""))
        body.pop("n", None)  # one image per job: a job's outputs are what it was charged for
        if call.category is Category.IMAGE_EDIT or "image" in media:
            reply = await self._edit(call.endpoint, prompt, media, body)
        else:
            _refuse_files(media)
            reply = await self._client.images.generate(
                model=call.endpoint, prompt=prompt, n=1, extra_body=body
            )
        fmt = reply.output_format or str(body.get("output_format") or "png")
        outputs = [_image_output(item, fmt) for item in reply.data or ()]
        if not outputs:
            raise ProviderError(FailureKind.UNAVAILABLE, "OpenAI answered without an image")
        return ProviderResult(outputs=outputs, request_id=reply._request_id)

    async def _edit(
        self, model: str, prompt: str, media: dict[str, Media], body: dict[str, Any]
    ) -> ImagesResponse:
        images = media.pop("image", None)
        if images is None:
            raise ProviderError(
                FailureKind.INVALID, "an OpenAI image edit needs its input image in 'image'"
            )
        mask = _file(_one(media.pop("mask"))) if "mask" in media else openai.omit
        _refuse_files(media)
        return await self._client.images.edit(
            model=model, prompt=prompt, image=_files(images), mask=mask, n=1, extra_body=body
        )

    # --- videos -------------------------------------------------------------------------------

    async def _video(self, call: ProviderCall, watch: Watch) -> ProviderResult:
        media, body = _split(call.payload)
        prompt = str(body.pop("prompt", ""))
        reference = await _reference(media, str(body.get("size") or DEFAULT_VIDEO_SIZE))
        videos = self._client.videos
        video = await _quiet(
            lambda: videos.create(
                prompt=prompt, model=call.endpoint, input_reference=reference, extra_body=body
            )
        )
        try:
            await watch.submitted(video.id)
            done = await self._follow(video.id, watch)
            content = await _quiet(lambda: videos.download_content(video.id, variant="video"))
        except asyncio.CancelledError:
            await asyncio.shield(self._delete(video.id))
            raise
        except openai.OpenAIError as exc:
            raise _failure(exc, request_id=video.id) from exc
        output = ProviderOutput(data=content.content, content_type="video/mp4")
        seconds = float(done.seconds) if str(done.seconds).isdigit() else None
        return ProviderResult(outputs=[output], request_id=video.id, duration=seconds)

    async def _follow(self, video_id: str, watch: Watch) -> Video:
        delay = self._poll_interval
        while True:
            video, asked = await self._look(video_id)
            if video is not None and _settled(video):
                return video
            if video is not None:
                await watch.progress(fraction=video.progress / 100)
            await watch.wait(video_id, asked if asked is not None else delay)
            delay = next_poll(delay)

    async def _look(self, video_id: str) -> tuple[Video | None, float | None]:
        """The video now, and the pause that OpenAI asks for before the next look; no video
        after a hiccup worth polling through (a 5xx, a 429, a lost connection)."""
        retrieve = self._client.videos.with_streaming_response.retrieve
        try:
            async with _quiet(lambda: retrieve(video_id)) as response:
                return await response.parse(), _poll_after(response.headers)
        except (openai.APIConnectionError, openai.InternalServerError) as exc:
            log.warning("openai video poll failed", extra={"error": type(exc).__name__})
            return None, None
        except openai.RateLimitError as exc:
            return None, _retry_after(exc.response.headers)

    async def _delete(self, video_id: str) -> None:
        # The Videos API has no cancel: DELETE, which removes a video and its stored assets, is
        # the only stop there is. Best effort, and quick: the job is given up either way.
        with contextlib.suppress(openai.OpenAIError, TimeoutError):
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                await _quiet(lambda: self._client.videos.delete(video_id))

    # --- speech recognition -------------------------------------------------------------------

    async def _transcribe(self, call: ProviderCall) -> ProviderResult:
        media, body = _split(call.payload)
        audio = media.pop("file", None)
        if audio is None:
            raise ProviderError(FailureKind.INVALID, "OpenAI transcribes one audio in 'file'")
        _refuse_files(media)
        for fixed in ("response_format", "timestamp_granularities"):
            body.pop(fixed, None)
        reply = await self._client.audio.transcriptions.create(
            file=_file(_one(audio)),
            model=call.endpoint,
            response_format="verbose_json",
            timestamp_granularities=["segment"],
            extra_body=body,
        )
        segments = [Segment(s.text.strip(), s.start, s.end) for s in reply.segments or ()]
        return ProviderResult(
            outputs=(),
            request_id=reply._request_id,
            text=reply.text.strip(),
            segments=segments,
            duration=reply.duration,
        )


# --- payloads ---------------------------------------------------------------------------------


def _split(payload: Payload) -> tuple[dict[str, Media], dict[str, Any]]:
    """The payload as the SDK takes it: media (sent as files) apart from the other fields."""
    media: dict[str, Media] = {}
    body: dict[str, Any] = {}
    for name, value in payload.items():
        if isinstance(value, MediaInput):
            media[name] = value
        elif isinstance(value, list) and value and all(isinstance(v, MediaInput) for v in value):
            media[name] = list(value)
        else:
            body[name] = value
    return media, body


def _refuse_files(media: Mapping[str, Media]) -> None:
    if media:
        names = ", ".join(sorted(media))
        raise ProviderError(FailureKind.INVALID, f"OpenAI takes no file here in: {names}")


def _one(value: Media) -> MediaInput:
    return value[0] if isinstance(value, list) else value


def _file(medium: MediaInput, index: int = 0) -> FileTuple:
    suffix = f"-{index}" if index else ""
    name = f"{medium.field or medium.kind}{suffix}.{_extension(medium.content_type)}"
    return name, medium.data, medium.content_type


def _files(value: Media) -> FileTuple | list[FileTuple]:
    """One file (sent as ``image``) or a list of them (sent as ``image[]``), as given."""
    if isinstance(value, list):
        return [_file(medium, index) for index, medium in enumerate(value)]
    return _file(value)


def _extension(content_type: str) -> str:
    base = content_type.partition(";")[0].strip().lower()
    return _EXTENSIONS.get(base) or (mimetypes.guess_extension(base) or ".bin").lstrip(".")


async def _reference(media: dict[str, Media], size: str) -> FileTuple | openai.Omit:
    reference = media.pop("input_reference", None)
    _refuse_files(media)
    if reference is None:
        return openai.omit
    return await asyncio.to_thread(_fitted, _one(reference), size)


def _fitted(image: MediaInput, size: str) -> FileTuple:
    """Sora takes a reference image only at the video's exact size ("Inpaint image must match
    the requested width and height" [2nd]): crop to its aspect ratio and scale, as PNG."""
    from PIL import Image as Pillow
    from PIL import ImageOps

    try:
        width, height = (int(side) for side in size.split("x"))
        with Pillow.open(io.BytesIO(image.data)) as picture:
            if picture.size == (width, height):
                return _file(image)
            fitted = ImageOps.fit(picture.convert("RGB"), (width, height))
    except (ValueError, OSError):
        return _file(image)  # a size or an image OpenAI will judge for itself
    buffer = io.BytesIO()
    fitted.save(buffer, format="PNG")
    return "input_reference.png", buffer.getvalue(), "image/png"


def _quiet(make: Callable[[], T]) -> T:
    """``make()`` without the SDK's notice that Sora is deprecated, which every Videos method
    gives when called: an operator who routes a job to Sora has chosen to, and a process run
    with warnings as errors would fail the job on it. The notice is given by the call itself,
    before any await, so this block cannot interleave with another task."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The Sora API", DeprecationWarning)
        return make()


# --- answers ----------------------------------------------------------------------------------


def _image_output(item: Image, fmt: str) -> ProviderOutput:
    if item.b64_json:
        content_type = _IMAGE_TYPES.get(fmt, "image/png")
        return ProviderOutput(data=base64.b64decode(item.b64_json), content_type=content_type)
    if item.url:
        return ProviderOutput(url=item.url)  # dall-e's, valid for an hour
    raise ProviderError(FailureKind.UNAVAILABLE, "OpenAI answered an image with no data")


def _settled(video: Video) -> bool:
    if video.status == "failed":
        message = video.error.message if video.error else "the video generation failed"
        raise ProviderError(FailureKind.FAILED, message, request_id=video.id)
    return video.status == "completed"


def _poll_after(headers: Mapping[str, str]) -> float | None:
    try:
        asked = int(headers.get("openai-poll-after-ms", ""))
    except ValueError:
        return None
    return min(asked / 1000, MAX_POLL_S) if asked >= 0 else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), as
    the SDK itself reads them."""
    with contextlib.suppress(KeyError, ValueError):
        return max(float(headers["retry-after-ms"]) / 1000, 0.0)
    return retry_after_seconds(headers.get("retry-after"))


# --- errors -----------------------------------------------------------------------------------


def _failure(exc: openai.OpenAIError, request_id: str | None = None) -> ProviderError:
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc, request_id or exc.request_id)
    if isinstance(exc, openai.APITimeoutError):
        message = "OpenAI timed out"
    elif isinstance(exc, openai.APIConnectionError):
        message = f"OpenAI could not be reached ({type(exc.__cause__ or exc).__name__})"
    else:  # an answer the SDK could not read
        message = f"OpenAI: {type(exc).__name__}: {exc}"
    return ProviderError(FailureKind.UNAVAILABLE, message, request_id=request_id)


def _status_failure(exc: openai.APIStatusError, request_id: str | None) -> ProviderError:
    status = exc.status_code
    message = _message(exc)
    if status in (400, 422):
        return ProviderError(FailureKind.INVALID, message, status=status, request_id=request_id)
    if status in (401, 403):
        # A 401's message quotes part of the key, so it is not passed on; a 403's says what the
        # key may not do (an unverified organisation, a region), which the operator needs.
        said = f": {message}" if status == 403 else ""
        refusal = f"OpenAI refused the key (HTTP {status}{said}); check {KEY_ENV}"
        return ProviderError(FailureKind.UNAVAILABLE, refusal, status=status, request_id=request_id)
    wait = _retry_after(exc.response.headers) if status == 429 else None
    return ProviderError(
        FailureKind.UNAVAILABLE,
        f"OpenAI answered HTTP {status}: {message}",
        status=status,
        request_id=request_id,
        retry_after=wait,
    )


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message
