"""fal's queue answers as typed values: the submit's and the status's JSON, and a result's
output object. An answer that is not what fal documents is fal being unavailable."""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from hyperlocal.engines.providers.base import FailureKind, ProviderError

__all__ = ["RUNNING", "Accepted", "Status", "json_object", "parsed"]

RUNNING = frozenset({"IN_QUEUE", "IN_PROGRESS"})  # every other status is a request's last


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Accepted(_Wire):
    request_id: str
    queue_position: int | None = None


class Status(_Wire):
    status: str
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.error_type is not None


_W = TypeVar("_W", bound=_Wire)


def parsed(model: type[_W], response: httpx.Response, request_id: str | None) -> _W:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ProviderError(
            FailureKind.UNAVAILABLE,
            f"fal: unexpected answer from {response.request.url.path}",
            status=response.status_code,
            request_id=request_id,
        ) from exc


def json_object(response: httpx.Response, request_id: str) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            return body
    raise ProviderError(
        FailureKind.UNAVAILABLE, "fal: the result is not a JSON object", request_id=request_id
    )
