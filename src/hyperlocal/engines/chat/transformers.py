"""``transformers``: a GGUF model loaded by Hugging Face transformers on CPU torch.

The same files as ``llamacpp`` (see ``model_files``), loaded with
``from_pretrained(folder, gguf_file=name)``: transformers de-quantises the weights to float32
and rebuilds the tokenizer, chat template included, from the GGUF's metadata. It needs
``torch``, ``transformers``, ``gguf`` and ``accelerate``; without them ``create`` raises
``EngineUnavailableError`` (503). Loading SmolLM2-135M takes about 20 s on two cores, so the
first request waits for it; llama.cpp remains the default backend.

Content parts are handled as in ``llamacpp``: text parts joined, image parts left out.
Stop sequences are cut from the text here (the reply never contains them), as OpenAI does.

These modules are imported through ``importlib`` into ``Any``: the engine is optional, and
mypy must check this file the same way whether or not torch is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperlocal.engines.base import EngineContext
from hyperlocal.engines.chat.base import (
    ChatDelta,
    ChatRequest,
    ChatUsage,
    message_text,
)
from hyperlocal.engines.chat.model_files import resolve_model_path
from hyperlocal.engines.chat.threads import Emit, stream_from_thread
from hyperlocal.errors import EngineUnavailableError, GenerationError, InputError

__all__ = ["TransformersChatEngine", "create"]

REQUIRED = ("torch", "transformers", "gguf", "accelerate")
_ROLES = {"developer": "system"}


@dataclass(slots=True)
class _Model:
    model: Any
    tokenizer: Any
    context: int
    lock: threading.Lock = field(default_factory=threading.Lock)


def _load(path: Path) -> _Model:
    if not path.is_file():
        raise GenerationError(f"Model file not found: {path}")
    torch: Any = importlib.import_module("torch")
    transformers: Any = importlib.import_module("transformers")
    folder, name = str(path.parent), path.name
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise GenerationError(f"Could not load {name}: {exc}") from exc
    model.eval()
    return _Model(model, tokenizer, int(model.config.max_position_embeddings))


def _stop_at(text: str, stops: Sequence[str]) -> tuple[int, bool]:
    """How much of ``text`` can go out now, and whether a stop sequence ended it. The tail
    that could still grow into a stop sequence is held back."""
    found = [text.index(s) for s in stops if s in text]
    if found:
        return min(found), True
    held = max((i for s in stops for i in range(1, len(s)) if text.endswith(s[:i])), default=0)
    return len(text) - held, False


class _Run:
    """One generation: transformers calls ``put`` with each new token (the first call carries
    the prompt) and the stopping check once per token."""

    def __init__(self, model: _Model, request: ChatRequest, prompt_tokens: int) -> None:
        self.model, self.request, self.prompt_tokens = model, request, prompt_tokens
        self.tokens: list[int] = []
        self.sent = 0
        self.stopped = False
        self.emit: Emit = lambda _delta: None
        self.cancel = threading.Event()
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.tokens.extend(value.reshape(-1).tolist())
        text = self.model.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd") or self.stopped:
            return  # half a character: wait for the rest
        end, self.stopped = _stop_at(text, self.request.stop)
        if end > self.sent:
            usage = ChatUsage(self.prompt_tokens, len(self.tokens))
            self.emit(ChatDelta(text[self.sent : end], usage=usage))
            self.sent = end

    def end(self) -> None:
        return None

    def __call__(self, input_ids: Any, _scores: Any, **_: Any) -> Any:
        torch: Any = importlib.import_module("torch")
        done = self.stopped or self.cancel.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

    def produce(self, emit: Emit, cancel: threading.Event) -> None:
        self.emit, self.cancel = emit, cancel
        with self.model.lock:
            if not cancel.is_set():
                self._generate()
        if not cancel.is_set():
            emit(ChatDelta(finish_reason=self._finish(), usage=self._usage()))

    def _generate(self) -> None:
        transformers: Any = importlib.import_module("transformers")
        inputs = self._inputs()
        sampling: dict[str, Any] = {"do_sample": False}
        if self.request.temperature > 0:
            sampling = {"do_sample": True, "temperature": self.request.temperature}
        self.model.model.generate(
            **inputs,
            max_new_tokens=self.request.max_tokens,
            streamer=self,
            stopping_criteria=transformers.StoppingCriteriaList([self]),
            pad_token_id=self.model.tokenizer.eos_token_id,
            **sampling,
        )

    def _inputs(self) -> Any:
        return self.model.tokenizer.apply_chat_template(
            _messages(self.request),
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )

    def _finish(self) -> str:
        if not self.stopped and len(self.tokens) >= self.request.max_tokens:
            return "length"
        return "stop"

    def _usage(self) -> ChatUsage:
        return ChatUsage(self.prompt_tokens, min(len(self.tokens), self.request.max_tokens))


def _messages(request: ChatRequest) -> list[dict[str, str]]:
    return [
        {"role": _ROLES.get(m.role, m.role), "content": message_text(m)} for m in request.messages
    ]


def _prompt_tokens(model: _Model, request: ChatRequest) -> int:
    ids = model.tokenizer.apply_chat_template(_messages(request), add_generation_prompt=True)
    if isinstance(ids, Mapping):
        ids = ids["input_ids"]
    return len(ids)


class TransformersChatEngine:
    def __init__(self) -> None:
        self._models: dict[Path, _Model] = {}
        self._loading = asyncio.Lock()

    async def _model(self, path: Path) -> _Model:
        async with self._loading:
            if path not in self._models:
                self._models[path] = await asyncio.to_thread(_load, path)
        return self._models[path]

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        request.started()  # the backend is this process: it has the request now
        path = resolve_model_path(request.options)
        if path is None:
            raise GenerationError("No model file: set engine_options.model_path")
        model = await self._model(path)
        prompt = await asyncio.to_thread(_prompt_tokens, model, request)
        if prompt >= model.context:
            raise InputError(
                "messages",
                f"the conversation is {prompt} tokens; the context holds {model.context}",
            )
        run = _Run(model, request, prompt)
        async with contextlib.aclosing(stream_from_thread(run.produce, name="transformers")) as d:
            async for delta in d:
                yield delta

    async def aclose(self) -> None:
        self._models = {}


def create(_context: EngineContext) -> TransformersChatEngine:
    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        raise EngineUnavailableError(f"transformers (missing: {', '.join(missing)})")
    return TransformersChatEngine()
