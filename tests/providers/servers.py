"""The five providers' loopback fakes, started by name, for runs through the real server; and
an operator catalogue file that restates entries with the routes a test wants.

Use::

    with serve("fal") as fake:                  # or "replicate", "openai", "gemini", "bfl"
        fake.base_url, fake.key, fake.state     # the fake's URL, the key it takes, its state
        make_settings(**fake.settings(), ...)   # that provider's key and base URL settings
        fake.answers                            # every answer it gave (Answer), in order

    fakes = Fakes(exit_stack)                   # each fake started on first use, kept open
    fakes["bfl"]                                # ... until the stack closes

    write_catalogue(path, [entry])              # a TOML file for Settings(catalog=path)

``state`` is the fake's own (``FalState``, ``ReplicateState``, ``FakeOpenAI``, ``GeminiState``,
``BflState``: see each fake's docstring); all of them record the requests in
``state.requests``. ``answers`` adds what the fakes do not keep: the answers themselves, where
the provider's request id is (a response header, a ``responseId``).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyperlocal.core.catalog import ModelEntry
from tests.providers.fakes import bfl, fal, gemini, openai, replicate
from tests.support import serve_in_thread

__all__ = ["PROVIDERS", "Answer", "Fake", "FakeState", "Fakes", "serve", "write_catalogue"]

FakeState = (
    fal.FalState
    | replicate.ReplicateState
    | openai.FakeOpenAI
    | gemini.GeminiState
    | (bfl.BflState)
)

# provider -> (its key's settings field, its base URL's settings field)
PROVIDERS: Mapping[str, tuple[str, str]] = {
    "fal": ("fal_key", "fal_base_url"),
    "replicate": ("replicate_api_token", "replicate_base_url"),
    "openai": ("openai_api_key", "openai_base_url"),
    "gemini": ("gemini_api_key", "gemini_base_url"),
    "bfl": ("bfl_api_key", "bfl_base_url"),
}


@dataclass(frozen=True)
class Answer:
    """One answer a fake gave (header names lower-case)."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Fake:
    provider: str
    base_url: str  # what the provider's base URL setting takes (OpenAI's ends in /v1)
    key: str
    state: FakeState
    answers: list[Answer] = field(repr=False)
    jwks_url: str | None = None  # fal's key set, for its webhooks

    def settings(self) -> dict[str, str]:
        """Settings overrides that send this provider's calls here."""
        key_field, url_field = PROVIDERS[self.provider]
        values = {key_field: self.key, url_field: self.base_url}
        if self.jwks_url is not None:
            values["fal_jwks_url"] = self.jwks_url
        return values


class Fakes:
    """The fakes a group of tests shares: each started on first use, stopped with ``stack``."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._served: dict[str, Fake] = {}

    def __getitem__(self, provider: str) -> Fake:
        if provider not in self._served:
            self._served[provider] = self._stack.enter_context(serve(provider))
        return self._served[provider]


@contextmanager
def serve(provider: str) -> Iterator[Fake]:
    """``provider``'s fake on a real loopback server, for the ``with`` block."""
    starter = _STARTERS.get(provider)
    if starter is None:
        raise KeyError(f"no fake for provider {provider!r}; there are {sorted(_STARTERS)}")
    with starter([]) as fake:
        yield fake


# --- each fake ------------------------------------------------------------------------------


@contextmanager
def _fal(answers: list[Answer]) -> Iterator[Fake]:
    state = fal.FalState()
    with _served(fal.create_app(state), answers) as url:
        state.url = url
        yield Fake("fal", url, state.key, state, answers, jwks_url=state.jwks_url)


@contextmanager
def _replicate(answers: list[Answer]) -> Iterator[Fake]:
    state = replicate.ReplicateState()
    with _served(replicate.create_app(state), answers) as url:
        state.url = url
        try:
            yield Fake("replicate", url, state.token, state, answers)
        finally:
            state.release()  # no held answer outlives the fake


@contextmanager
def _openai(answers: list[Answer]) -> Iterator[Fake]:
    state = openai.FakeOpenAI()
    with _served(openai.create_app(state), answers) as root:
        state.url = f"{root}/v1"
        yield Fake("openai", state.url, state.key, state, answers)


@contextmanager
def _gemini(answers: list[Answer]) -> Iterator[Fake]:
    state = gemini.GeminiState()
    with _served(gemini.create_app(state), answers) as url:  # the API root: the SDK adds /v1beta
        yield Fake("gemini", url, state.key, state, answers)


@contextmanager
def _bfl(answers: list[Answer]) -> Iterator[Fake]:
    state = bfl.BflState()
    with _served(bfl.create_app(state), answers) as url:
        yield Fake("bfl", url, state.key, state, answers)


_STARTERS: dict[str, Callable[[list[Answer]], AbstractContextManager[Fake]]] = {
    "fal": _fal,
    "replicate": _replicate,
    "openai": _openai,
    "gemini": _gemini,
    "bfl": _bfl,
}


@contextmanager
def _served(app: FastAPI, answers: list[Answer]) -> Iterator[str]:
    app.add_middleware(_AnswerRecorder, answers=answers)
    with serve_in_thread(app) as url:
        yield url


class _AnswerRecorder:
    """Pure ASGI middleware: keeps each HTTP answer whole (the fakes answer small bodies)."""

    def __init__(self, app: ASGIApp, answers: list[Answer]) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started: dict[str, Any] = {"status": 0, "headers": {}}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                started["status"] = message["status"]
                started["headers"] = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        answer = Answer(
            scope["method"], scope["path"], started["status"], started["headers"], b"".join(chunks)
        )
        self.answers.append(answer)


# --- an operator catalogue --------------------------------------------------------------------


def write_catalogue(path: Path, entries: list[ModelEntry]) -> Path:
    """Write ``entries`` as an operator catalogue (each replaces the built-in entry with its id)
    and check that the file reads back as exactly those entries."""
    tables = [entry.model_dump(mode="json", by_alias=True, exclude_none=True) for entry in entries]
    text = "".join(_model_table(table) for table in tables)
    path.write_text(text, "utf-8")
    read = [ModelEntry.model_validate(m) for m in tomllib.loads(text)["model"]]
    assert read == entries, "the catalogue file does not restate the entries as they are"
    return path


def _model_table(table: Mapping[str, Any]) -> str:
    lines = ["[[model]]", *(f"{_key(k)} = {_toml(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n\n"


def _toml(value: Any) -> str:
    """A TOML inline value (one line). ``None`` has no TOML form: dump with exclude_none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's basic string's
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}: {value!r}")


def _float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _key(name: str) -> str:
    return json.dumps(str(name), ensure_ascii=False)


S = TypeVar("S")


@dataclass(frozen=True)
class Served(Generic[S]):
    """A fake provider's state and the loopback URL its app answers on."""

    state: S
    url: str


@contextmanager
def served(state: S, app: Callable[[S], FastAPI]) -> Iterator[Served[S]]:
    """``app(state)`` served on loopback until the block ends."""
    with serve_in_thread(app(state)) as url:
        yield Served(state, url)
