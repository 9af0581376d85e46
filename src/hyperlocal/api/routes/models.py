"""The model catalogue, with prices (spec §10), in the OpenAI list shape as well; and the
price of a request before it is made, from the same function that charges it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hyperlocal.api.deps import CurrentKey, Svc
from hyperlocal.core import pricing
from hyperlocal.core.catalog import ModelEntry

router = APIRouter(tags=["models"])


def model_json(entry: ModelEntry, available: bool) -> dict[str, Any]:
    """A model as users see it. Where its id and price come from (``evidence``, the price's
    ``note``) is for operators: ``GET /admin/models``."""
    return {
        "id": entry.id,
        "object": "model",
        "created": 0,
        "owned_by": "hyperlocal",
        "name": entry.name,
        "category": entry.category.value,
        "description": entry.description,
        "engine": entry.engine,
        "available": available,
        "price": entry.price.model_dump(exclude_defaults=True, exclude={"note"}),
        "priceAtDefaults": pricing.quote(entry, {}),
        "priceInputs": list(pricing.price_inputs(entry.price)),
        "inputs": {
            name: spec.model_dump(exclude_defaults=True) for name, spec in entry.inputs.items()
        },
    }


@router.get("/models")
async def list_models(key: CurrentKey, svc: Svc) -> dict[str, Any]:  # noqa: ARG001
    data = [
        model_json(e, svc.engines.available(e.engine) or svc.chat.available(e.engine))
        for e in svc.catalog
    ]
    return {"object": "list", "data": data}


class QuoteBody(BaseModel):
    input: dict[str, Any] = Field(
        default_factory=dict,
        description="The request's inputs so far; those not given take their defaults.",
        examples=[{"duration": 10, "resolution": "720p"}],
    )


class Quote(BaseModel):
    model: str
    credits: int = Field(description="What a request with these inputs is charged.")


@router.post("/models/{model_id}/quote", response_model=Quote)
async def quote(model_id: str, body: QuoteBody, key: CurrentKey, svc: Svc) -> Quote:  # noqa: ARG001
    """The credits a request with ``input`` would be charged, computed as its submit computes
    them. A price by the minute of input audio is its one-minute minimum; a chat's, the
    minimum for a message. A bad value answers 400, as the submit would."""
    return Quote(model=model_id, credits=pricing.quote(svc.catalog.get(model_id), body.input))
