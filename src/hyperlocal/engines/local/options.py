"""Typed reads of a catalogue entry's ``engine_options`` and of request parameters.

The catalogue validates option values only as scalars, so a wrong type is an operator's
configuration mistake: it fails the job with a message naming the option, not a TypeError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from hyperlocal.engines.base import GenerationRequest, InputValue, MediaInput
from hyperlocal.errors import GenerationError

__all__ = ["first_media", "integer", "number", "seed_for", "text"]

Values = Mapping[str, InputValue]
SEED_RANGE = 2**32  # numpy's and torch's generators both take any seed below this


def number(values: Values, key: str, default: float) -> float:
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GenerationError(f"{key} must be a number, not {value!r}")
    return float(value)


def integer(values: Values, key: str, default: int) -> int:
    value = values.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise GenerationError(f"{key} must be a whole number, not {value!r}")
    return int(value)


def text(values: Values, key: str, default: str = "") -> str:
    value = values.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise GenerationError(f"{key} must be text, not {value!r}")
    return value.strip() or default


def seed_for(request: GenerationRequest) -> int:
    """The request's ``seed`` when it gives a usable one, else one derived from the job id.

    Deriving it from the job id makes a retried job (same id) draw the same picture, while
    two jobs with the same prompt still differ. Negative seeds mean "random" to most clients.
    """
    given = request.params.get("seed")
    if isinstance(given, int) and not isinstance(given, bool) and given >= 0:
        return given % SEED_RANGE
    digest = hashlib.sha256(request.job_id.encode()).digest()
    return int.from_bytes(digest[:4], "big")


def first_media(request: GenerationRequest, fields: Sequence[str]) -> MediaInput | None:
    """The first medium given under any of ``fields``, in that order of preference."""
    for name in fields:
        if found := request.media.get(name):
            return found[0]
    return None
