"""``DirectRoute``: the chat relay's routes, handled without FastAPI's per-request machinery.

A relayed chat is judged by the latency it adds to the upstream's, and FastAPI's request
handling (the dependency solver, its exit stack and telemetry, response-model validation) cost
more per request than everything hyperlocal itself does for a chat. A route declared with
``route_class=DirectRoute`` keeps FastAPI for everything but the request: its OpenAPI entry,
its place in the router, the app's middleware and exception handlers. Its requests skip the
solver: the key is authenticated by the same function as ``CurrentKey``, the body is decoded
and validated by pydantic, in FastAPI's order, and the endpoint must return a ``Response``.

So the endpoint's parameters are fixed: ``body`` (a pydantic model), ``key: CurrentKey``,
``svc: Svc`` and ``request: Request``, by those names; anything else fails at start-up, not on
a request. Errors match FastAPI's: an invalid body is a ``RequestValidationError`` with the same
error locations, mapped to HTTP in ``api.errors`` like any other.
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

from hyperlocal.api.deps import authenticate, get_services

__all__ = ["DirectRoute"]

_PARAMETERS = ("body", "key", "svc", "request")
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        endpoint = self.endpoint
        model = _body_model(endpoint)

        async def handle(request: Request) -> Response:
            # FastAPI's order: a body that is not JSON fails first; then the key is checked
            # (and counted); only then is the body validated.
            data = _decode(await request.body())
            svc = get_services(request)
            key = await authenticate(request, svc)
            body = _validate(model, data)
            response: Response = await endpoint(body=body, key=key, svc=svc, request=request)
            return response

        return handle


def _body_model(endpoint: Callable[..., Any]) -> type[BaseModel]:
    names = tuple(inspect.signature(endpoint).parameters)
    if names != _PARAMETERS:
        raise TypeError(f"a DirectRoute endpoint takes {_PARAMETERS}, not {names}")
    model = typing.get_type_hints(endpoint)["body"]
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"a DirectRoute endpoint's body must be a pydantic model, not {model!r}")
    return model


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


def _validate(model: type[BaseModel], data: Any) -> BaseModel:
    """As FastAPI does it: the decoded Python value, validated (pydantic's messages differ
    between its JSON and Python modes: "a valid array" against "a valid list")."""
    if data is _EMPTY:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return model.model_validate(data, from_attributes=True)  # FastAPI's own flag
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None
