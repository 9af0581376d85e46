"""Typed results. Each is built from the wire JSON by ``from_json`` and keeps that JSON as
``raw``, so fields a server adds later are never lost (and ``--json`` prints them as sent).

Parsing is lenient about what the contract leaves optional: a field the hosted service
omits becomes None rather than an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Account",
    "ChatChoice",
    "ChatChunk",
    "ChatCompletion",
    "ChatMessage",
    "ChatUsage",
    "ImageOutput",
    "ImageResult",
    "Job",
    "JobAccepted",
    "JobPage",
    "JobStatus",
    "MediaResult",
    "Model",
    "Segment",
    "Transcription",
]

Json = Mapping[str, Any]


def _str(data: Json, name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) else None


def _int(data: Json, name: str) -> int:
    value = data.get(name)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(data: Json, name: str) -> float | None:
    value = data.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _list(data: Json, name: str) -> list[Json]:
    value = data.get(name)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


class JobStatus(StrEnum):
    """A job as the wire shows it: ``processing`` covers both queued and running."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self is not JobStatus.PROCESSING

    @classmethod
    def parse(cls, value: object) -> JobStatus:
        # Words other services use; anything unknown is taken as still in progress.
        word = str(value).lower()
        if word in ("completed", "succeeded", "success", "done"):
            return cls.COMPLETED
        if word in ("failed", "error", "canceled", "cancelled"):
            return cls.FAILED
        return cls.PROCESSING


@dataclass(frozen=True, slots=True)
class ImageOutput:
    url: str
    model: str | None


@dataclass(frozen=True, slots=True)
class ImageResult:
    """``POST /v1/images/generate`` and ``/v1/images/edit``."""

    created: int
    images: list[ImageOutput]
    result_id: str | None
    credits_used: int
    raw: Json = field(repr=False, compare=False)

    @property
    def url(self) -> str:
        return self.images[0].url

    @classmethod
    def from_json(cls, data: Json) -> ImageResult:
        images = [ImageOutput(str(d.get("url")), _str(d, "model")) for d in _list(data, "data")]
        return cls(
            _int(data, "created"), images, _str(data, "resultId"), _int(data, "creditsUsed"), data
        )

    @classmethod
    def from_job(cls, job: Job) -> ImageResult:
        urls = job.raw.get("outputUrls") or ([job.output_url] if job.output_url else [])
        images = [ImageOutput(str(url), job.model) for url in urls]
        result_id = _str(job.raw, "resultId") or job.job_id
        return cls(job.completed_at or 0, images, result_id, job.credits_used, job.raw)


@dataclass(frozen=True, slots=True)
class JobAccepted:
    """The 202 answer to a submit: the job runs on, to be polled at ``poll_url``."""

    job_id: str
    status: JobStatus
    message: str | None
    credits_used: int
    poll_url: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> JobAccepted:
        return cls(
            job_id=str(data.get("jobId")),
            status=JobStatus.parse(data.get("status")),
            message=_str(data, "message"),
            credits_used=_int(data, "creditsUsed"),
            poll_url=_str(data, "pollUrl"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    start: float
    end: float
    words: list[Json] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Json) -> Segment:
        start, end = _float(data, "start") or 0.0, _float(data, "end") or 0.0
        return cls(str(data.get("text", "")), start, end, _list(data, "words"))


@dataclass(frozen=True, slots=True)
class Job:
    """``GET /v1/jobs/{id}``. ``progress`` (0 to 1), ``queue_position`` and ``expires_at``
    (when the outputs are deleted; None while kept forever) are hyperlocal extensions;
    ``text``/``duration``/``segments`` come inline for speech recognition."""

    job_id: str
    status: JobStatus
    model: str | None
    type: str | None
    credits_used: int
    output_url: str | None
    error: str | None
    code: str | None
    progress: float | None
    queue_position: int | None
    completed_at: int | None
    raw: Json = field(repr=False, compare=False)
    expires_at: int | None = None

    @classmethod
    def from_json(cls, data: Json) -> Job:
        position = data.get("queuePosition")
        return cls(
            job_id=str(data.get("jobId")),
            status=JobStatus.parse(data.get("status")),
            model=_str(data, "model"),
            type=_str(data, "type"),
            credits_used=_int(data, "creditsUsed"),
            output_url=_str(data, "outputUrl"),
            error=_str(data, "error"),
            code=_str(data, "code"),
            progress=_float(data, "progress"),
            queue_position=position if isinstance(position, int) else None,
            completed_at=_int(data, "completedAt") or None,
            raw=data,
            expires_at=_int(data, "expiresAt") or None,
        )


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of ``GET /v1/jobs`` (a hyperlocal extension), newest first."""

    jobs: list[Job]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Json) -> JobPage:
        return cls([Job.from_json(j) for j in _list(data, "data")], _str(data, "nextCursor"))


@dataclass(frozen=True, slots=True)
class MediaResult:
    """Audio (speech, cloned voice, music) and 3D: ``outputUrl`` and what the engine reported."""

    output_url: str
    credits_used: int
    duration: float | None
    job_id: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> MediaResult:
        return cls(
            output_url=str(data.get("outputUrl")),
            credits_used=_int(data, "creditsUsed"),
            duration=_float(data, "duration"),
            job_id=_str(data, "jobId"),
            raw=data,
        )

    @classmethod
    def from_job(cls, job: Job) -> MediaResult:
        return cls.from_json(job.raw)


@dataclass(frozen=True, slots=True)
class Transcription:
    """Speech recognition (``audio-asr``): the text, with segment (and word) timings."""

    text: str
    duration: float | None
    segments: list[Segment]
    credits_used: int
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Transcription:
        return cls(
            text=str(data.get("text", "")),
            duration=_float(data, "duration"),
            segments=[Segment.from_json(s) for s in _list(data, "segments")],
            credits_used=_int(data, "creditsUsed"),
            raw=data,
        )

    @classmethod
    def from_job(cls, job: Job) -> Transcription:
        return cls.from_json(job.raw)


@dataclass(frozen=True, slots=True)
class Account:
    """``GET /v1/account`` (a hyperlocal extension): the calling key's balance and limits."""

    key_id: str
    key_name: str | None
    credits: int
    rate_limit: int | None
    max_running_jobs: int | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Account:
        return cls(
            key_id=str(data.get("keyId")),
            key_name=_str(data, "keyName"),
            credits=_int(data, "credits"),
            rate_limit=_int(data, "rateLimit") or None,
            max_running_jobs=_int(data, "maxRunningJobs") or None,
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Model:
    """One catalogue entry from ``GET /v1/models``; ``price`` and ``inputs`` as the server
    describes them."""

    id: str
    category: str | None
    name: str | None
    description: str | None
    available: bool
    price: Json
    inputs: Json
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Model:
        price, inputs = data.get("price"), data.get("inputs")
        return cls(
            id=str(data.get("id")),
            category=_str(data, "category"),
            name=_str(data, "name"),
            description=_str(data, "description"),
            available=data.get("available") is not False,
            price=price if isinstance(price, Mapping) else {},
            inputs=inputs if isinstance(inputs, Mapping) else {},
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ChatChoice:
    index: int
    message: ChatMessage
    finish_reason: str | None


@dataclass(frozen=True, slots=True)
class ChatUsage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def from_json(cls, data: object) -> ChatUsage | None:
        if not isinstance(data, Mapping):
            return None
        fields = ("prompt_tokens", "completion_tokens", "total_tokens")
        return cls(*(_int(data, name) for name in fields))


@dataclass(frozen=True, slots=True)
class ChatCompletion:
    """OpenAI's ``chat.completion``, plus Hypereal's ``creditsUsed``."""

    id: str
    model: str | None
    created: int
    choices: list[ChatChoice]
    usage: ChatUsage | None
    credits_used: int
    raw: Json = field(repr=False, compare=False)

    @property
    def content(self) -> str:
        return self.choices[0].message.content if self.choices else ""

    @classmethod
    def from_json(cls, data: Json) -> ChatCompletion:
        choices = [
            ChatChoice(
                index=_int(c, "index"),
                message=_message(c.get("message")),
                finish_reason=_str(c, "finish_reason"),
            )
            for c in _list(data, "choices")
        ]
        return cls(
            id=str(data.get("id")),
            model=_str(data, "model"),
            created=_int(data, "created"),
            choices=choices,
            usage=ChatUsage.from_json(data.get("usage")),
            credits_used=_int(data, "creditsUsed"),
            raw=data,
        )


def _message(data: object) -> ChatMessage:
    if not isinstance(data, Mapping):
        return ChatMessage("assistant", "")
    return ChatMessage(str(data.get("role") or "assistant"), str(data.get("content") or ""))


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """One ``chat.completion.chunk`` of a stream: ``content`` is the new text (maybe empty).
    The last chunk carries ``finish_reason``, and ``usage``/``credits_used`` where sent."""

    id: str
    model: str | None
    content: str
    finish_reason: str | None
    usage: ChatUsage | None
    credits_used: int | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> ChatChunk:
        choices = _list(data, "choices")
        choice: Json = choices[0] if choices else {}
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, Mapping) else None
        credits = data.get("creditsUsed")
        return cls(
            id=str(data.get("id")),
            model=_str(data, "model"),
            content=content if isinstance(content, str) else "",
            finish_reason=_str(choice, "finish_reason"),
            usage=ChatUsage.from_json(data.get("usage")),
            credits_used=credits if isinstance(credits, int) else None,
            raw=data,
        )
