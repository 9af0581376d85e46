"""Check a request's ``input`` against a catalogue entry, before anything is charged.

Real clients send several alias fields at once (``end_image``, ``last_image``, ...) and
fields that a model does not take, so unknown keys are ignored, never rejected. Values are
coerced where a JSON client may reasonably send another spelling ("5" for 5, "true" for true).
Every problem raises :class:`InputError` naming the field as the client sent it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from hyperlocal.core.catalog import MEDIA_TYPES, InputSpec, InputType, ModelEntry
from hyperlocal.engines.base import InputValue
from hyperlocal.errors import InputError

__all__ = ["media_fields", "validate_inputs"]

_MEDIA_PREFIXES = ("http://", "https://", "data:")
_MEDIA_PROBLEM = "must be an http(s) URL or a data: URI"


def validate_inputs(
    entry: ModelEntry, raw: Mapping[str, object], *, partial: bool = False
) -> dict[str, InputValue]:
    """The entry's inputs, coerced, checked and defaulted, keyed by their canonical names.

    An optional input that is absent and has no default is left out of the result; so is a
    required one when ``partial`` (a form being filled in asks for a price).
    """
    values: dict[str, InputValue] = {}
    for name, spec in entry.inputs.items():
        value = _one(name, spec, raw, partial=partial)
        if value is not None:
            values[name] = value
    return values


def media_fields(entry: ModelEntry) -> dict[str, InputType]:
    """The entry's media inputs (images, audio, video) by canonical name."""
    return {name: spec.type for name, spec in entry.inputs.items() if spec.type in MEDIA_TYPES}


def _one(name: str, spec: InputSpec, raw: Mapping[str, object], *, partial: bool) -> InputValue:
    field, value = _pick(name, spec, raw)
    if _absent(value):
        if spec.required and not partial:
            raise InputError(name, "is required")
        return None
    coerced = _spelled(spec, _COERCERS[spec.type](field, value))
    _check(field, spec, coerced)
    return coerced


def _pick(name: str, spec: InputSpec, raw: Mapping[str, object]) -> tuple[str, object]:
    """The wire name and value that fill an input: its own name, then aliases, then the default.

    ``null`` and ``""`` count as absent, because clients send empty alias fields; so does a
    string of spaces, which no model can do anything with (a prompt of spaces is no prompt).
    """
    for key in (name, *spec.aliases):
        if not _absent(raw.get(key)):
            return key, raw[key]
    return name, spec.default


def _spelled(spec: InputSpec, value: InputValue) -> InputValue:
    """A string enum value in the catalogue's spelling: clients send "1080P" for "1080p"."""
    if spec.enum is None or not isinstance(value, str):
        return value
    folded = value.casefold()
    return next((v for v in spec.enum if isinstance(v, str) and v.casefold() == folded), value)


def _absent(value: object) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def _check(field: str, spec: InputSpec, value: InputValue) -> None:
    if spec.enum is not None and value not in spec.enum:
        raise InputError(field, "must be one of: " + ", ".join(_show(v) for v in spec.enum))
    if isinstance(value, int | float) and not isinstance(value, bool):
        _check_range(field, spec, value)
    if isinstance(value, str) and spec.max_length is not None and len(value) > spec.max_length:
        raise InputError(field, f"must be at most {spec.max_length} characters")
    if isinstance(value, list):
        _check_count(field, spec, value)


def _check_range(field: str, spec: InputSpec, value: float) -> None:
    low, high = spec.minimum, spec.maximum
    if (low is None or value >= low) and (high is None or value <= high):
        return
    if low is not None and high is not None:
        raise InputError(field, f"must be between {_show(low)} and {_show(high)}")
    if low is not None:
        raise InputError(field, f"must be at least {_show(low)}")
    raise InputError(field, f"must be at most {_show(high)}")


def _check_count(field: str, spec: InputSpec, value: Sequence[str]) -> None:
    if spec.min_items is not None and len(value) < spec.min_items:
        raise InputError(field, f"must have at least {_items(spec.min_items)}")
    if spec.max_items is not None and len(value) > spec.max_items:
        raise InputError(field, f"must have at most {_items(spec.max_items)}")


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _show(value: object) -> str:
    """Numbers as a person writes them: 100, not 100.0; booleans as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- coercion, one function per InputType --------------------------------------------------


def _string(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InputError(field, "must be a string")
    return value


def _integer(field: str, value: object) -> int:
    number = _to_number(value)
    if isinstance(number, float) and number.is_integer():
        return int(number)
    if isinstance(number, int):
        return number
    raise InputError(field, "must be an integer")


def _number(field: str, value: object) -> int | float:
    number = _to_number(value)
    if number is None:
        raise InputError(field, "must be a number")
    return number


def _to_number(value: object) -> int | float | None:
    """An int or finite float from a JSON number or numeric string; never from a boolean."""
    if isinstance(value, str):
        value = _parse_number(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _parse_number(text: str) -> int | float | None:
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def _boolean(field: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InputError(field, "must be true or false")


def _medium(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.startswith(_MEDIA_PREFIXES):
        raise InputError(field, _MEDIA_PROBLEM)
    return value


def _media_list(field: str, value: object) -> list[str]:
    """A list of media; a single URL is taken as a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InputError(field, "must be a list of http(s) URLs or data: URIs")
    return [_medium(f"{field}[{i}]", item) for i, item in enumerate(value)]


_COERCERS: dict[InputType, Callable[[str, object], InputValue]] = {
    InputType.STRING: _string,
    InputType.INTEGER: _integer,
    InputType.NUMBER: _number,
    InputType.BOOLEAN: _boolean,
    InputType.IMAGE: _medium,
    InputType.IMAGES: _media_list,
    InputType.AUDIO: _medium,
    InputType.VIDEO: _medium,
}
