"""The resources of ``Client``: ``client.images``, ``client.jobs``... Each method builds a
``Call`` (``_calls``) and has the client perform it."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Self, overload

import httpx

from hyperlocal.client import _calls as calls
from hyperlocal.client._calls import JobWatch, ProgressCallback
from hyperlocal.client._errors import InvalidRequest, NotFound, network_error
from hyperlocal.client._media import MediaInput
from hyperlocal.client._models import (
    Account,
    ChatChunk,
    ChatCompletion,
    ImageResult,
    Job,
    JobAccepted,
    JobPage,
    MediaResult,
    Model,
    Transcription,
)
from hyperlocal.client._sse import DONE, SSEDecoder, chat_chunk

if TYPE_CHECKING:
    from hyperlocal.client._client import Client

__all__ = [
    "AccountAPI",
    "AudioAPI",
    "ChatAPI",
    "ChatStream",
    "ImagesAPI",
    "JobsAPI",
    "ModelsAPI",
    "ThreeDAPI",
    "VideosAPI",
]

Messages = str | Sequence[Mapping[str, Any]]


class _Resource:
    def __init__(self, client: Client) -> None:
        self._client = client


class ImagesAPI(_Resource):
    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        aspect_ratio: str | None = None,
        size: str | None = None,
        output_format: str | None = None,
        image: MediaInput | None = None,
        reference_images: Sequence[MediaInput] | None = None,
        **extra: Any,
    ) -> ImageResult:
        """Text to image; ``model`` None is the server's default (``gemini-3-1-flash-t2i``)."""
        options: dict[str, Any] = {"model": model, "aspect_ratio": aspect_ratio, "size": size}
        options |= {"output_format": output_format, "image": image}
        options |= {"reference_images": reference_images, **extra}
        return self._client._run(calls.image_generate(prompt, options))

    def edit(
        self,
        prompt: str,
        images: MediaInput | Sequence[MediaInput],
        *,
        model: str,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        output_format: str | None = None,
        **extra: Any,
    ) -> ImageResult:
        options = {"model": model, "aspect_ratio": aspect_ratio, "resolution": resolution}
        options |= {"output_format": output_format, **extra}
        return self._client._run(calls.image_edit(prompt, images, options))


class VideosAPI(_Resource):
    def generate(
        self,
        model: str,
        *,
        prompt: str | None = None,
        image: MediaInput | None = None,
        duration: float | None = None,
        end_image: MediaInput | None = None,
        negative_prompt: str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        webhook_url: str | None = None,
        **extra: Any,
    ) -> JobAccepted:
        """Submit a video job (202); follow it with ``jobs.wait(accepted.job_id)``."""
        inputs: dict[str, Any] = {"prompt": prompt, "image": image, "duration": duration}
        inputs |= {"end_image": end_image}
        inputs |= {"negative_prompt": negative_prompt, "aspect_ratio": aspect_ratio}
        inputs |= {"resolution": resolution, **extra}
        return self._client._run(calls.video_generate(model, inputs, webhook_url))


class AudioAPI(_Resource):
    def tts(
        self,
        text: str,
        *,
        model: str = "audio-tts",
        format: str | None = None,
        voice: str | None = None,
        **extra: Any,
    ) -> MediaResult:
        inputs = {"text": text, "format": format, "voice": voice, **extra}
        return self._client._run(calls.audio(model, inputs))

    def clone(
        self,
        text: str,
        audio: MediaInput,
        *,
        model: str = "audio-clone",
        format: str | None = None,
        **extra: Any,
    ) -> MediaResult:
        inputs = {"text": text, "audio": audio, "format": format, **extra}
        return self._client._run(calls.audio(model, inputs))

    def transcribe(
        self,
        audio: MediaInput,
        *,
        model: str = "audio-asr",
        language: str | None = None,
        ignore_timestamps: bool | None = None,
        **extra: Any,
    ) -> Transcription:
        inputs = {"audio": audio, "language": language, "ignore_timestamps": ignore_timestamps}
        return self._client._run(calls.transcribe(model, inputs | extra))

    def music(
        self,
        prompt: str,
        *,
        model: str = "lyria-3-pro",
        duration: float | None = None,
        format: str | None = None,
        **extra: Any,
    ) -> MediaResult:
        inputs = {"prompt": prompt, "duration": duration, "format": format, **extra}
        return self._client._run(calls.audio(model, inputs))


class ThreeDAPI(_Resource):
    def generate(self, model: str, **inputs: Any) -> MediaResult:
        """A GLB from ``image=``, from views (``front_image_url=``...), or from ``prompt=``."""
        return self._client._run(calls.three_d(model, inputs))


class ChatAPI(_Resource):
    @overload
    def create(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        stream: Literal[False] = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **options: Any,
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        stream: Literal[True],
        temperature: float | None = None,
        max_tokens: int | None = None,
        **options: Any,
    ) -> ChatStream: ...

    def create(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **options: Any,
    ) -> ChatCompletion | ChatStream:
        """OpenAI's ``POST /v1/chat/completions``. ``messages`` is a list of
        ``{"role", "content"}``, or one string (a single user message)."""
        options |= {"temperature": temperature, "max_tokens": max_tokens}
        body = calls.chat_body(messages, model, stream, options)
        if not stream:
            return self._client._run(calls.chat(body, ChatCompletion.from_json))
        return ChatStream(
            self._client._send(calls.chat(body, ChatCompletion.from_json), stream=True)
        )


class ChatStream:
    """The chunks of one streamed chat, as they arrive. Iterate it once; close it (or use
    ``with``) to stop early, which also stops the server generating."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[ChatChunk]:
        decoder = SSEDecoder()
        try:
            for line in self._response.iter_lines():
                event = decoder.feed(line)
                if event is not None and event.data == DONE:
                    return
                if event is not None:
                    yield chat_chunk(event)
        except httpx.TransportError as exc:
            raise network_error(exc) from exc
        finally:
            self.close()

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class JobsAPI(_Resource):
    def get(self, job_id: str) -> Job:
        return self._client._run(calls.job_get(job_id))

    def list(self, *, limit: int = 20, cursor: str | None = None) -> JobPage:
        """The key's jobs, newest first (hyperlocal extension); pass ``next_cursor`` on."""
        return self._client._run(calls.job_list(limit, cursor))

    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job (hyperlocal extension): it fails as ``canceled``,
        and its credits are refunded."""
        return self._client._run(calls.job_cancel(job_id))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        poll_interval: float = 2.0,
        progress: ProgressCallback | None = None,
        events: bool = True,
    ) -> Job:
        """Block until the job completes and return it; raise ``GenerationFailed`` if it
        failed, ``JobTimeoutError`` after ``timeout`` seconds. ``progress(status, fraction)``
        is called on every change. It follows ``/v1/jobs/{id}/events`` where the server has
        it (hyperlocal), and polls every ``poll_interval`` seconds otherwise."""
        watch = JobWatch(job_id, timeout, progress)
        job = self._follow(watch) if events else None
        return job or self._poll(watch, poll_interval)

    def _follow(self, watch: JobWatch) -> Job | None:
        """The job from its event stream; None where there is no stream, or it broke off."""
        timeout = httpx.Timeout(max(0.1, watch.remaining()))
        try:
            response = self._client._send(
                calls.job_events(watch.job_id), stream=True, timeout=timeout
            )
        except (NotFound, InvalidRequest):
            return None  # no such route (the hosted API); polling tells a missing job apart
        try:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                return None
            for line in response.iter_lines():
                if (job := watch.line(line)) is not None:
                    return job
                watch.check()
        except httpx.TimeoutException:
            raise watch.expired() from None  # the read timeout is the time that was left
        except httpx.TransportError:
            return None
        finally:
            response.close()
        return None

    def _poll(self, watch: JobWatch, interval: float) -> Job:
        while True:
            if (job := watch.job(self.get(watch.job_id))) is not None:
                return job
            watch.check()
            time.sleep(max(0.0, min(interval, watch.remaining())))


class AccountAPI(_Resource):
    def get(self) -> Account:
        """The calling key's balance and limits (``GET /v1/account``, hyperlocal extension)."""
        return self._client._run(calls.account())


class ModelsAPI(_Resource):
    def list(self) -> builtins.list[Model]:
        return self._client._run(calls.models())
