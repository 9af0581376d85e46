"""A call's payload read the Gemini API's way: each field under either of its spellings
(``aspect_ratio``/``aspectRatio``), text and media checked, parts for ``generateContent``."""

from __future__ import annotations

import re
from typing import Any

from google.genai import types

from hyperlocal.engines.base import MediaInput
from hyperlocal.engines.providers.base import FailureKind, Payload, PayloadValue, ProviderError

__all__ = ["media_of", "parts", "seconds_of", "text_of", "whole_seconds", "with_duration"]

_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)s?\s*$")


def seconds_of(text: str) -> float | None:
    """``"8"`` or ``"8s"`` (Google's Duration in JSON) as seconds; None for anything else."""
    found = _SECONDS.match(text)
    return float(found.group(1)) if found else None


def text_of(payload: Payload, *names: str) -> str | None:
    value = next((payload[name] for name in names if payload.get(name) is not None), None)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ProviderError(FailureKind.INVALID, f"gemini: {names[0]} must be text")


def media_of(payload: Payload, *names: str) -> list[MediaInput]:
    """Every medium under ``names``, in order (a route may map an ``image`` and ``images``)."""
    items: list[Any] = []
    for value in (payload.get(name) for name in names):
        items.extend(value if isinstance(value, list) else [] if value is None else [value])
    media = [item for item in items if isinstance(item, MediaInput)]
    if len(media) != len(items):
        raise ProviderError(FailureKind.INVALID, f"gemini: {names[0]} must be media")
    return media


def whole_seconds(payload: Payload, *names: str) -> int | None:
    text = text_of(payload, *names)
    if text is None:
        return None
    seconds = seconds_of(text)
    if seconds is None:
        raise ProviderError(FailureKind.INVALID, f"gemini: {names[0]} must be seconds: {text!r}")
    return round(seconds)


def parts(prompt: str | None, media: list[MediaInput]) -> list[types.Part]:
    texts = [types.Part.from_text(text=prompt)] if prompt else []
    inline = [types.Part.from_bytes(data=item.data, mime_type=item.content_type) for item in media]
    return texts + inline


def with_duration(prompt: str | None, duration: PayloadValue) -> str | None:
    """Lyria has no duration field (providers.md §4.3): the wish goes into the prompt."""
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        return prompt
    return f"{prompt or 'Music'}. Make it about {duration:g} seconds long."
