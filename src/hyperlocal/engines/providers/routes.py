"""A catalogue entry's routes: which real model serves it, and how its inputs map there.

In the catalogue (``models.toml``, or the operator's file), in order of preference::

    [[model.routes]]
    to = "fal:fal-ai/kling-video/v2.6/pro/image-to-video"
    map.prompt = "prompt"
    map.image = "start_image_url"
    map.duration = { to = "duration", as = "string" }
    map.sound = "generate_audio"
    set = { }                      # fixed provider fields, sent as they are

    [[model.routes]]
    to = "replicate:kwaivgi/kling-v2.6"
    map.prompt = "prompt"
    map.image = "start_image"

``to`` is ``<provider>:<the provider's model id>``, or ``engine:<name>`` for a local-weights
engine on this server's GPUs (``overflow_wait_s`` then sends new jobs on to the next route
while the engine's expected wait is longer). A route whose provider has no key is skipped;
with none usable, the entry's own ``engine`` serves as before.

``map.<our input> = "<provider field>"`` or ``{ to, as, values }``: ``values`` translates one
value into another (``"16:9" = "landscape_16_9"``); ``as`` converts the type after that:

- ``string``, ``integer``, ``number``: ``5`` -> ``"5"`` and back;
- ``seconds``: ``8`` -> ``"8s"``;
- ``upper``, ``lower``: ``"2k"`` -> ``"2K"``;
- ``list``: one value (or one image) -> a list of it;
- ``first``: a list -> its first item.

Inputs that a route does not map are not sent. A mapped input that the request left out (and
that has no default) is not sent either.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ENGINE_ROUTE", "FieldMap", "RouteSpec", "Transform"]

ENGINE_ROUTE = "engine"

Scalar = str | int | float | bool
Transform = Literal["string", "integer", "number", "seconds", "upper", "lower", "list", "first"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldMap(_Strict):
    to: str
    as_: Transform | None = Field(None, alias="as")
    values: dict[str, Scalar] | None = None


class RouteSpec(_Strict):
    to: str
    map: dict[str, str | FieldMap] = Field(default_factory=dict)
    set: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    overflow_wait_s: float | None = Field(None, gt=0)
    note: str = ""  # for operators: where the route and its fields come from

    @field_validator("to")
    @classmethod
    def _provider_and_target(cls, value: str) -> str:
        provider, _, target = value.partition(":")
        if not provider or not target:
            raise ValueError("a route is '<provider>:<model>' or 'engine:<name>'")
        return value

    @property
    def provider(self) -> str:
        return self.to.partition(":")[0]

    @property
    def target(self) -> str:
        return self.to.partition(":")[2]

    @property
    def is_engine(self) -> bool:
        return self.provider == ENGINE_ROUTE

    def field_maps(self) -> dict[str, FieldMap]:
        return {
            name: FieldMap(to=spec) if isinstance(spec, str) else spec
            for name, spec in self.map.items()
        }
