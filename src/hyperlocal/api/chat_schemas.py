"""Chat wire schemas (spec §9): the OpenAI request and response shapes, and the SSE chunks.

Both endpoints read the same body; they differ in defaults (``stream`` true and temperature
0.8 on the legacy ``/v1/chat``, OpenAI's false and 1.0 on ``/v1/chat/completions``) and in
what the stream ends with. Unknown fields (``top_p``, ``user``, ``tools``...) are ignored, as
the hosted API ignores them.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hyperlocal.core.chat import ChatReply, ChatSubmit
from hyperlocal.core.keys import KeyInfo
from hyperlocal.engines.chat.base import ChatMessage, ChatUsage, ContentPart, ImagePart, TextPart
from hyperlocal.errors import ErrorCode, HyperlocalError, InputError

__all__ = [
    "ChatCompletionBody",
    "ChatCompletionResponse",
    "ChunkWriter",
    "LegacyChatBody",
    "LegacyChatResponse",
    "reply_json",
]

DEFAULT_MAX_TOKENS = 4096


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ImageUrlBody(_Open):
    url: str
    detail: str | None = None


class ContentPartBody(_Open):
    type: str
    text: str | None = None
    image_url: ImageUrlBody | str | None = None


class MessageBody(_Open):
    role: str = Field(examples=["user"])
    content: str | list[ContentPartBody] | None = Field(None, examples=["Hello!"])
    name: str | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class _ChatBody(_Open):
    model: str | None = Field(None, examples=["smollm2-135m"])
    messages: list[MessageBody]
    temperature: float | None = Field(None, description="0 to 2.")
    max_tokens: int | None = Field(None, description=f"Default {DEFAULT_MAX_TOKENS}.")
    max_completion_tokens: int | None = Field(None, description="OpenAI's newer max_tokens.")
    stop: str | list[str] | None = None
    n: int | None = Field(None, description="Only 1 is supported.")

    def to_submit(self, key: KeyInfo, *, stream: bool, temperature: float) -> ChatSubmit:
        if self.n not in (None, 1):
            raise InputError("n", "only 1 choice is supported")
        return ChatSubmit(
            key=key,
            model=self.model,
            messages=[_message(m, f"messages[{i}]") for i, m in enumerate(self.messages)],
            temperature=temperature if self.temperature is None else self.temperature,
            max_tokens=self._max_tokens(),
            stop=(self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ()),
            stream=stream,
        )

    def _max_tokens(self) -> int:
        for value in (self.max_completion_tokens, self.max_tokens):
            if value is not None:
                return value
        return DEFAULT_MAX_TOKENS


class LegacyChatBody(_ChatBody):
    stream: bool | None = Field(True, description="Server-Sent Events unless false.")

    def submit(self, key: KeyInfo) -> ChatSubmit:
        return self.to_submit(key, stream=self.stream is not False, temperature=0.8)


class ChatCompletionBody(_ChatBody):
    stream: bool | None = False
    stream_options: StreamOptions | None = None

    def submit(self, key: KeyInfo) -> ChatSubmit:
        return self.to_submit(key, stream=bool(self.stream), temperature=1.0)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _message(body: MessageBody, where: str) -> ChatMessage:
    if body.content is None or isinstance(body.content, str):
        return ChatMessage(body.role, body.content or "", body.name)
    parts = tuple(_part(p, f"{where}.content[{i}]") for i, p in enumerate(body.content))
    return ChatMessage(body.role, parts, body.name)


def _part(part: ContentPartBody, where: str) -> ContentPart:
    if part.type == "text" and part.text is not None:
        return TextPart(part.text)
    if part.type == "image_url" and isinstance(part.image_url, ImageUrlBody):
        return ImagePart(part.image_url.url, part.image_url.detail)
    if part.type == "image_url" and isinstance(part.image_url, str):
        return ImagePart(part.image_url)
    if part.type in ("text", "image_url"):
        raise InputError(where, f"a {part.type} part needs its '{part.type}' field")
    raise InputError(f"{where}.type", f"'{part.type}' is not supported (text and image_url are)")


class UsageBody(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: ChatUsage) -> UsageBody:
        # The wire needs numbers; a prompt size the backend did not report counts as 0.
        prompt = usage.prompt_tokens or 0
        return cls(
            prompt_tokens=prompt,
            completion_tokens=usage.completion_tokens,
            total_tokens=prompt + usage.completion_tokens,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChoiceBody(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class LegacyChatResponse(BaseModel):
    id: str = Field(examples=["chatcmpl-3f9a..."])
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChoiceBody]
    usage: UsageBody
    creditsUsed: int


class ChatCompletionResponse(LegacyChatResponse):
    """OpenAI's ``chat.completion``, plus the Hypereal ``creditsUsed``."""


def reply_json(reply: ChatReply) -> bytes:
    """The reply as ``ChatCompletionResponse`` (or ``LegacyChatResponse``, the same fields)
    would serialise it, byte for byte (``tests/chat/test_reply_json.py`` compares), built
    straight from the reply: the nested models cost more to make than relaying the reply did.
    Where those models cannot serialise at all (a lone surrogate, which an upstream's JSON can
    escape), the text is written as ASCII with escapes instead of failing."""
    prompt = reply.usage.prompt_tokens or 0
    body: dict[str, Any] = {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": reply.usage.completion_tokens,
            "total_tokens": prompt + reply.usage.completion_tokens,
        },
        "creditsUsed": reply.credits,
    }
    try:
        return _json(body).encode()
    except UnicodeEncodeError:  # a lone surrogate (JSON can escape one; UTF-8 cannot hold it)
        return json.dumps(body, separators=(",", ":")).encode()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ChunkWriter:
    """Renders one chat's ``chat.completion.chunk`` events as SSE bytes.

    ``legacy``: the final chunk (with ``finish_reason``) also carries ``usage`` and
    ``creditsUsed``. Otherwise OpenAI's rules: with ``include_usage`` every chunk has
    ``"usage": null`` and one more chunk, with ``choices: []`` and the usage, ends the stream.
    The JSON around a token is the same for every chunk of a chat, so it is built once: a
    token costs one ``json.dumps`` of its text.
    """

    DONE = b"data: [DONE]\n\n"

    def __init__(
        self, chat_id: str, model: str, created: int, credits: int, *, legacy: bool, usage: bool
    ) -> None:
        self._base: dict[str, Any] = {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._credits, self._legacy, self._usage = credits, legacy, usage and not legacy
        head = _json(self._base)[:-1] + (',"usage":null' if self._usage else "")
        self._head = 'data: %s,"choices":[{"index":0,"delta":{' % head  # noqa: UP031
        self._tail = '},"logprobs":null,"finish_reason":null}]}\n\n'

    def content(self, text: str, *, first: bool) -> bytes:
        role = '"role":"assistant",' if first else ""
        return f'{self._head}{role}"content":{_json(text)}{self._tail}'.encode()

    def finish(self, reason: str, usage: ChatUsage, *, first: bool) -> bytes:
        delta = {"role": "assistant", "content": ""} if first else {}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        chunk: dict[str, Any] = {**self._base, "choices": [choice]}
        if self._legacy:
            chunk |= {"usage": UsageBody.of(usage).model_dump(), "creditsUsed": self._credits}
        elif self._usage:
            chunk["usage"] = None
        else:
            chunk["creditsUsed"] = self._credits
        return _event(chunk)

    def usage(self, usage: ChatUsage) -> bytes | None:
        """The extra last chunk that ``include_usage`` asks for, or None."""
        if not self._usage:
            return None
        body = UsageBody.of(usage).model_dump()
        return _event({**self._base, "choices": [], "usage": body, "creditsUsed": self._credits})

    def error(self, exc: HyperlocalError) -> bytes:
        code = getattr(exc, "code", ErrorCode.UNEXPECTED)
        return _event({"error": exc.message, "code": str(code)})


def _event(chunk: dict[str, Any]) -> bytes:
    return f"data: {_json(chunk)}\n\n".encode()
