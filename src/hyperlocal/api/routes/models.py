"""The model catalogue, with prices (spec §10), in the OpenAI list shape as well."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hyperlocal.api.deps import CurrentKey, Svc
from hyperlocal.core.catalog import ModelEntry

router = APIRouter(tags=["models"])


def model_json(entry: ModelEntry, available: bool) -> dict[str, Any]:
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
        "evidence": entry.evidence.value,
        "price": entry.price.model_dump(exclude_defaults=True),
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
