"""Every API call as a value: what to send, how to read the answer, whether it is safe to
resend. The sync and async clients differ only in how they perform a ``Call``, so the wire
format lives here once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from hyperlocal.client._errors import GenerationFailed, JobTimeoutError
from hyperlocal.client._media import MediaInput, encode_inputs
from hyperlocal.client._models import (
    Account,
    ImageResult,
    Job,
    JobAccepted,
    JobPage,
    JobStatus,
    MediaResult,
    Model,
    Transcription,
)
from hyperlocal.client._sse import SSEDecoder

__all__ = ["Call", "JobWatch", "ProgressCallback"]

T = TypeVar("T")
Json = Mapping[str, Any]
ProgressCallback = Callable[[JobStatus, float | None], object]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """``path`` is relative to the API base (``.../v1``) unless it is an absolute URL.
    ``idempotent``: safe to resend after the server may have acted on it. ``submit``: send
    an ``Idempotency-Key``, one per call, kept across its retries. ``on_job``: a 202 answer
    (the server made it a job) is waited on, and the finished job read with this."""

    method: str
    path: str
    parse: Callable[[Json], T]
    body: Json | None = None
    params: Json | None = None
    idempotent: bool = True
    submit: bool = False
    on_job: Callable[[Job], T] | None = None
    authenticate: bool = True


def _ignore(_data: Json) -> None:
    return None


def _submit(
    path: str, body: Json, parse: Callable[[Json], T], on_job: Callable[[Job], T]
) -> Call[T]:
    return Call("POST", path, parse, body=body, submit=True, on_job=on_job)


def image_generate(prompt: str, options: Json) -> Call[ImageResult]:
    body = encode_inputs({"prompt": prompt, **options})
    return _submit("/images/generate", body, ImageResult.from_json, ImageResult.from_job)


def image_edit(
    prompt: str, images: MediaInput | Sequence[MediaInput], options: Json
) -> Call[ImageResult]:
    listed = (
        [images] if isinstance(images, str | bytes) or not isinstance(images, Sequence) else images
    )
    body = encode_inputs({"prompt": prompt, "images": list(listed), **options})
    return _submit("/images/edit", body, ImageResult.from_json, ImageResult.from_job)


def generation(model: str, inputs: Json, webhook_url: str | None = None) -> Json:
    body: dict[str, Any] = {"model": model, "input": encode_inputs(inputs)}
    if webhook_url:
        body["webhook_url"] = webhook_url
    return body


def video_generate(model: str, inputs: Json, webhook_url: str | None) -> Call[JobAccepted]:
    body = generation(model, inputs, webhook_url)
    return Call("POST", "/videos/generate", JobAccepted.from_json, body=body, submit=True)


def audio(model: str, inputs: Json) -> Call[MediaResult]:
    body = generation(model, inputs)
    return _submit("/audio/generate", body, MediaResult.from_json, MediaResult.from_job)


def transcribe(model: str, inputs: Json) -> Call[Transcription]:
    body = generation(model, inputs)
    return _submit("/audio/generate", body, Transcription.from_json, Transcription.from_job)


def three_d(model: str, inputs: Json) -> Call[MediaResult]:
    body = generation(model, inputs)
    return _submit("/3d/generate", body, MediaResult.from_json, MediaResult.from_job)


def _job_path(job_id: str, suffix: str = "") -> str:
    return f"/jobs/{quote(job_id, safe='')}{suffix}"


def job_get(job_id: str) -> Call[Job]:
    return Call("GET", _job_path(job_id), Job.from_json)


def job_list(limit: int, cursor: str | None) -> Call[JobPage]:
    params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    return Call("GET", "/jobs", JobPage.from_json, params=params)


def job_cancel(job_id: str) -> Call[Job]:
    # Cancelling twice leaves the job as the first cancel did: safe to resend.
    return Call("POST", _job_path(job_id, "/cancel"), Job.from_json)


def job_events(job_id: str) -> Call[None]:
    return Call("GET", _job_path(job_id, "/events"), _ignore)


def account() -> Call[Account]:
    return Call("GET", "/account", Account.from_json)


def _models(data: Json) -> list[Model]:
    items = data.get("data")
    return (
        [Model.from_json(m) for m in items if isinstance(m, Mapping)]
        if isinstance(items, list)
        else []
    )


def models() -> Call[list[Model]]:
    return Call("GET", "/models", _models)


def chat_body(
    messages: str | Sequence[Json], model: str | None, stream: bool, options: Json
) -> dict[str, Any]:
    listed = (
        [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
    )
    body: dict[str, Any] = {"messages": listed, "stream": stream}
    if model:
        body["model"] = model
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def chat(body: Json, parse: Callable[[Json], T]) -> Call[T]:
    # No idempotency on the chat wire: once sent, a chat is not sent again (it is charged).
    return Call("POST", "/chat/completions", parse, body=body, idempotent=False)


def download(url: str, same_origin: bool) -> Call[None]:
    # The key goes only to the server it belongs to, never to a storage host or CDN.
    return Call("GET", url, _ignore, authenticate=same_origin)


class JobWatch:
    """The state of one ``jobs.wait``: its deadline, what was last reported to ``progress``,
    and the outcome. It reads both polled jobs and ``/events`` lines."""

    def __init__(self, job_id: str, timeout: float, progress: ProgressCallback | None) -> None:
        self.job_id, self.timeout = job_id, timeout
        self._deadline = time.monotonic() + timeout
        self._progress = progress
        self._last: tuple[JobStatus, float | None] | None = None
        self._status = JobStatus.PROCESSING
        self._decoder = SSEDecoder()

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise JobTimeoutError(self.job_id, self.timeout)

    def expired(self) -> JobTimeoutError:
        return JobTimeoutError(self.job_id, self.timeout)

    def job(self, job: Job) -> Job | None:
        """Report a job; return it when it is finished (raise when it failed)."""
        self._report(job.status, 1.0 if job.status is JobStatus.COMPLETED else job.progress)
        if job.status is JobStatus.FAILED:
            raise GenerationFailed(job.error or "the job failed", body=job.raw)
        return job if job.status.terminal else None

    def line(self, line: str) -> Job | None:
        event = self._decoder.feed(line)
        if event is None:
            return None
        if event.event == "status":
            return self.job(Job.from_json(event.json()))
        if event.event == "progress":
            fraction = event.json().get("progress")
            self._report(
                self._status, float(fraction) if isinstance(fraction, int | float) else None
            )
        return None

    def _report(self, status: JobStatus, fraction: float | None) -> None:
        self._status = status
        if self._progress is not None and (status, fraction) != self._last:
            self._last = (status, fraction)
            self._progress(status, fraction)
