"""``FastRoute``: the hot routes (chat, image and media generation), handled without
FastAPI's per-request machinery.

A relayed chat is judged by the latency it adds to the upstream's, and a generation by the
gateway's cost per request; FastAPI's request handling (the dependency solver, its exit stack
and telemetry, response-model validation) cost more per request than most of what hyperlocal
itself does. A route declared with ``route_class=FastRoute`` keeps FastAPI for everything but
the request: its OpenAPI entry, its place in the router, the app's middleware and exception
handlers. Its requests skip the solver, so its endpoint says plainly what it takes:
``endpoint(body, call) -> Response``, where ``body`` is a pydantic model and ``call`` is a
``Call`` (``call: CurrentCall``, or ``call: IdempotentCall`` for a route that takes the
Idempotency-Key header). Anything else fails at start-up, not on a request.

``FastRoute`` builds the ``Call`` itself, as FastAPI's solver would from those aliases: the
key is authenticated by the same function as ``CurrentKey``'s, the header and the body are
validated by pydantic, in FastAPI's order, with FastAPI's flags. Errors match FastAPI's
(``tests/api/test_fast_route.py`` mounts one endpoint both ways and compares): an invalid
request raises a ``RequestValidationError`` with the same errors, mapped to HTTP in
``api.errors`` like any other.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from hyperlocal.api.deps import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_MAX_LENGTH,
    Call,
    CurrentCall,
    IdempotentCall,
    authenticate,
    get_services,
)

__all__ = ["FastRoute"]

_PARAMETERS = ("body", "call")
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = Callable[[Any, Call], Coroutine[Any, Any, Response]]


class FastRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        endpoint: Endpoint = self.endpoint
        model, idempotent = _signature(endpoint)

        async def handle(request: Request) -> Response:
            # FastAPI's order: a body that is not JSON fails first; then the key is checked
            # (and counted); then the header and the body are validated, in that order.
            data = _decode(await request.body())
            svc = get_services(request)
            key, rate_headers = await authenticate(request, svc)
            errors: list[dict[str, Any]] = []
            idem = _idempotency_key(request, errors) if idempotent else None
            body = _validate(model, data, errors)
            return await endpoint(body, Call(request, svc, key, rate_headers, idem))

        return handle


def _signature(endpoint: Callable[..., Any]) -> tuple[type[BaseModel], bool]:
    """The endpoint's body model, and whether it takes the Idempotency-Key header."""
    names = tuple(inspect.signature(endpoint).parameters)
    hints = typing.get_type_hints(endpoint, include_extras=True)
    if names != _PARAMETERS or hints.get("call") not in (CurrentCall, IdempotentCall):
        raise TypeError(
            f"a FastRoute endpoint takes (body, call: CurrentCall | IdempotentCall), not {names}"
        )
    model = hints["body"]
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"a FastRoute endpoint's body must be a pydantic model, not {model!r}")
    return model, hints["call"] == IdempotentCall


_EMPTY = object()


def _decode(raw: bytes) -> Any:
    if not raw:
        return _EMPTY
    try:
        return json.loads(raw)
    except ValueError as exc:
        pos = getattr(exc, "pos", 0)
        invalid = {"type": "json_invalid", "loc": ("body", pos), "msg": "JSON decode error"}
        raise RequestValidationError([invalid]) from None


def _idempotency_key(request: Request, errors: list[dict[str, Any]]) -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is not None and len(value) > IDEMPOTENCY_MAX_LENGTH:
        errors.append(
            {
                "type": "string_too_long",
                "loc": ("header", IDEMPOTENCY_HEADER),
                "msg": f"String should have at most {IDEMPOTENCY_MAX_LENGTH} characters",
                "input": value,
                "ctx": {"max_length": IDEMPOTENCY_MAX_LENGTH},
            }
        )
    return value


def _validate(model: type[BaseModel], data: Any, errors: list[dict[str, Any]]) -> BaseModel:
    """As FastAPI does it: the decoded Python value, validated (pydantic's messages differ
    between its JSON and Python modes: "a valid array" against "a valid list"); raised with
    any ``errors`` found before it."""
    if data is _EMPTY:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([*errors, missing])
    try:
        body = model.model_validate(data, from_attributes=True)  # FastAPI's own flag
    except ValidationError as exc:
        located = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError([*errors, *located]) from None
    if errors:
        raise RequestValidationError(errors)
    return body
