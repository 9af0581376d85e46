"""Our validated inputs -> one route's provider fields (see ``routes.py`` for the rules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hyperlocal.engines.base import GenerationRequest, InputValue, MediaInput
from hyperlocal.engines.providers.base import Payload, PayloadValue
from hyperlocal.engines.providers.routes import FieldMap, RouteSpec

__all__ = ["map_inputs"]


def map_inputs(request: GenerationRequest, route: RouteSpec) -> Payload:
    """The provider payload for ``request`` on ``route``: the fixed ``set`` fields first, then
    every mapped input the request carries (media as :class:`MediaInput` values)."""
    payload: dict[str, PayloadValue] = {key: _copy(value) for key, value in route.set.items()}
    for name, field_map in route.field_maps().items():
        value = _value_of(request, name)
        if value is None:
            continue
        payload[field_map.to] = _converted(_translated(value, field_map), field_map)
    return payload


def _copy(value: Any) -> PayloadValue:
    return list(value) if isinstance(value, list) else value


def _value_of(request: GenerationRequest, name: str) -> PayloadValue:
    media: Sequence[MediaInput] | None = request.media.get(name)
    if media:
        return list(media) if isinstance(request.params.get(name), list) else media[0]
    value: InputValue = request.params.get(name)
    return _copy(value)


def _translated(value: PayloadValue, field_map: FieldMap) -> PayloadValue:
    table: Mapping[str, Any] | None = field_map.values
    if table is None or isinstance(value, MediaInput | list | dict):
        return value
    key = _spelled(value)
    translated: PayloadValue = table.get(key, value)
    return translated


def _spelled(value: PayloadValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _converted(value: PayloadValue, field_map: FieldMap) -> PayloadValue:  # noqa: PLR0911
    match field_map.as_:
        case None:
            return value
        case "list":
            return value if isinstance(value, list) else [value]
        case "first":
            return value[0] if isinstance(value, list) and value else value
        case "string":
            return _spelled(value) if _is_scalar(value) else value
        case "seconds":
            return f"{_spelled(value)}s" if _is_scalar(value) else value
        case "integer":
            return int(float(str(value))) if _is_scalar(value) else value
        case "number":
            return float(str(value)) if _is_scalar(value) else value
        case "upper":
            return value.upper() if isinstance(value, str) else value
        case "lower":
            return value.lower() if isinstance(value, str) else value
    return value


def _is_scalar(value: PayloadValue) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)
