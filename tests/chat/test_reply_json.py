"""A non-streamed reply's JSON is written by hand on the hot path (``reply_json``); it must be
exactly what the documented response models would write, whatever the reply holds."""

from __future__ import annotations

import json

import pytest
from pydantic_core import PydanticSerializationError

from hyperlocal.api.chat_schemas import (
    AssistantMessage,
    ChatCompletionResponse,
    ChoiceBody,
    LegacyChatResponse,
    UsageBody,
    reply_json,
)
from hyperlocal.core.chat import ChatReply
from hyperlocal.engines.chat.base import ChatUsage

CONTENTS = [
    "",
    "plain words",
    'quotes " and \\ backslashes / slashes',
    "lines\nand\ttabs\r and \b\f control \x00\x01\x1f characters",
    "unicode: é ß 中文 🙂 and separators \u2028\u2029",
    "a lone surrogate half is not text: " + "\udc80",
]


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("model", [ChatCompletionResponse, LegacyChatResponse])
@pytest.mark.parametrize("usage", [ChatUsage(12, 200), ChatUsage(None, 3)])
def test_reply_json_is_what_the_response_model_writes(
    content: str, model: type[LegacyChatResponse], usage: ChatUsage
) -> None:
    reply = ChatReply("chatcmpl-1", "m", 1700000000, content, "length", usage, 7)
    prompt = usage.prompt_tokens or 0
    expected = model(
        id=reply.id,
        created=reply.created,
        model=reply.model,
        choices=[ChoiceBody(message=AssistantMessage(content=content), finish_reason="length")],
        usage=UsageBody(
            prompt_tokens=prompt,
            completion_tokens=usage.completion_tokens,
            total_tokens=prompt + usage.completion_tokens,
        ),
        creditsUsed=7,
    )
    if "\udc80" in content:  # pydantic cannot write it at all; we escape it, losing nothing
        with pytest.raises(PydanticSerializationError):
            expected.model_dump_json()
        written = reply_json(reply)
        assert written.isascii()
        assert json.loads(written) == expected.model_dump()  # the content included
        return
    assert reply_json(reply) == expected.model_dump_json().encode()
