"""Small helpers that more than one provider adapter needs, each written once here.

Only what the adapters read and write the same way belongs here: ``Retry-After``, media as
base64 or a ``data:`` URI, a body that may not be JSON, FastAPI's validation errors. Anything
that one provider says its own way stays in that provider's module.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from hyperlocal.engines.base import MediaInput

__all__ = [
    "base64_text",
    "data_uri",
    "json_or_none",
    "number_or_none",
    "retry_after_seconds",
    "validation_text",
]


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` value in seconds, never negative: delay-seconds or an HTTP date (one
    without a zone, ``-0000``, is UTC); None when absent or unreadable."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - time.time(), 0.0)


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def data_uri(media: MediaInput) -> str:
    """The medium inline, as the providers whose URL fields take ``data:`` URIs want it: the
    bytes never become a public URL."""
    return f"data:{media.content_type};base64,{base64_text(media.data)}"


def json_or_none(response: httpx.Response) -> Any:
    """The answer's JSON, or None when its body is not JSON (an error page, a bare text)."""
    try:
        return response.json()
    except ValueError:
        return None


def number_or_none(value: object) -> float | None:
    """A JSON number as a float; None for anything else, ``true`` and ``false`` included."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def validation_text(detail: object) -> str:
    """FastAPI's ``detail`` in one line: a string as it is, or a list of ``{loc, msg}`` field
    errors as ``"prompt: msg; width: msg"`` (``body`` left out of each location)."""
    if isinstance(detail, str):
        return detail.strip()
    if isinstance(detail, list):
        return "; ".join(filter(None, (_field_error(item) for item in detail)))
    if isinstance(detail, Mapping):
        return _field_error(detail)
    return ""


def _field_error(item: object) -> str:
    if not isinstance(item, Mapping):
        return str(item) if item else ""
    message = str(item.get("msg") or item.get("message") or "")
    loc = item.get("loc")
    location = (
        [str(part) for part in loc if part != "body"] if isinstance(loc, list | tuple) else []
    )
    return f"{'.'.join(location)}: {message}" if location and message else message
