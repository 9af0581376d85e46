"""The model catalogue: typed entries loaded from TOML data, never from code.

The built-in file is ``hyperlocal/catalog/models.toml``. An operator's file
(``HYPERLOCAL_CATALOG``) has the same shape; each of its ``[[model]]`` entries replaces the
built-in entry with the same id, or adds a new one. An entry may set ``enabled = false`` to
remove a built-in model; such an entry needs nothing but its ``id``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hyperlocal.engines.base import Category, InputValue, MediaCaps
from hyperlocal.engines.providers.routes import RouteSpec
from hyperlocal.errors import UnsupportedModelError

__all__ = [
    "Catalog",
    "Evidence",
    "InputSpec",
    "InputType",
    "MediaCaps",
    "ModelEntry",
    "Multiplier",
    "PriceRule",
    "load_catalog",
]

Scalar = str | int | float | bool


class InputType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    IMAGE = "image"  # one URL or data URI, fetched and checked to decode as an image
    IMAGES = "images"  # a list of image URLs or data URIs
    AUDIO = "audio"
    VIDEO = "video"


MEDIA_TYPES = frozenset({InputType.IMAGE, InputType.IMAGES, InputType.AUDIO, InputType.VIDEO})


class Evidence(StrEnum):
    CONFIRMED = "confirmed"  # id seen in public docs or production clients
    INFERRED = "inferred"  # id guessed from a named family to fill the hosted counts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    type: InputType
    required: bool = False
    default: InputValue = None
    enum: tuple[Scalar, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None  # characters, for strings
    min_items: int | None = None  # for lists
    max_items: int | None = None
    aliases: tuple[str, ...] = ()  # other wire names that fill this input (first one given wins)
    description: str = ""  # shown to users beside the field: say what it does, not where from
    # Values a form offers, such as the engine's voices. Unlike ``enum`` they are not enforced:
    # clients written for the hosted API send their own (a MiniMax voice_id), which is accepted.
    choices: tuple[Scalar, ...] | None = None
    # Accepted on the wire, because clients send it, but not offered in forms: the model does
    # nothing a user could want with it (``mode``), or another playground does it better.
    hidden: bool = False


class Multiplier(_Strict):
    """Multiply the price by ``factor`` when input ``field`` equals ``equals``."""

    field: str
    equals: Scalar
    factor: float


class PriceRule(_Strict):
    """How many credits a request costs. Every result is rounded up to a whole credit.

    - ``flat``: ``credits``.
    - ``per_second``: ``credits`` for every ``per_seconds`` seconds of input ``field``
      (``duration``), scaled linearly: 69 per 5 s makes 10 s cost 138.
    - ``per_resolution``: ``table[value of field]``, or ``credits`` when the value is missing.
    - ``per_minute``: ``credits`` for every started minute of input media (ASR).
    - ``per_message``: at least ``credits``; one more for every started ``chars_per_credit``
      characters of conversation beyond the first ``chars_per_credit``.

    ``multipliers`` then apply in order; the total is rounded up once, at the end.
    """

    kind: Literal["flat", "per_second", "per_resolution", "per_minute", "per_message"]
    credits: int = Field(ge=0)
    field: str | None = None
    per_seconds: float | None = None
    table: dict[str, int] | None = None
    chars_per_credit: int | None = None
    multipliers: tuple[Multiplier, ...] = ()
    note: str = ""


class ModelEntry(_Strict):
    id: str
    category: Category
    name: str
    engine: str
    evidence: Evidence = Evidence.CONFIRMED
    evidence_note: str = ""  # for operators (GET /admin/models): where the id comes from
    description: str = ""  # for users: what the model does
    enabled: bool = True
    timeout_s: float = Field(300.0, gt=0)
    price: PriceRule
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    engine_options: dict[str, Scalar] = Field(default_factory=dict)
    caps: MediaCaps = MediaCaps()  # on input media; a table sets only the caps it changes
    # The real models behind the id, in order of preference (engines/providers/routes.py);
    # ``engine`` serves when none of them is usable (no key configured).
    routes: tuple[RouteSpec, ...] = ()


class _Removal(_Strict):
    """``{id = "...", enabled = false}``: removes a built-in model without restating it."""

    id: str
    enabled: Literal[False]


class _CatalogFile(_Strict):
    model: list[ModelEntry | _Removal] = Field(default_factory=list)


class Catalog:
    """The enabled models, by id, in file order."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self._entries = {e.id: e for e in entries if e.enabled}

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model_id: str, *categories: Category) -> ModelEntry:
        """The entry for ``model_id``; raise ``UnsupportedModelError`` unless its category fits."""
        entry = self._entries.get(model_id)
        if entry is None or (categories and entry.category not in categories):
            raise UnsupportedModelError(model_id)
        return entry

    def by_category(self, category: Category) -> list[ModelEntry]:
        return [e for e in self._entries.values() if e.category is category]


def _parse(text: str, origin: str) -> list[ModelEntry | _Removal]:
    try:
        return _CatalogFile.model_validate(tomllib.loads(text)).model
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"invalid catalogue {origin}: {exc}") from exc


def load_catalog(override: Path | None = None) -> Catalog:
    """The built-in catalogue, with ``override``'s entries replacing or adding by id."""
    builtin = resources.files("hyperlocal.catalog").joinpath("models.toml").read_text("utf-8")
    merged: dict[str, ModelEntry] = {}
    _merge(merged, _parse(builtin, "models.toml"))
    if override is not None:
        _merge(merged, _parse(override.read_text("utf-8"), str(override)))
    return Catalog(list(merged.values()))


def _merge(merged: dict[str, ModelEntry], entries: list[ModelEntry | _Removal]) -> None:
    for entry in entries:
        if isinstance(entry, _Removal):
            merged.pop(entry.id, None)
        else:
            merged[entry.id] = entry
