"""The hyperlocal side of the images benchmark: the real app with a zero-work image engine.

Run by uvicorn as ``_hyperlocal_app:create --factory``; settings come from ``HYPERLOCAL_*``
variables that ``images.py`` sets. ``BENCH_PNG`` names the precomputed PNG the engine returns,
so every request costs the gateway alone: auth, rate limit, validation, the charge and job row
in one transaction, the queue, the storage write and the response.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.settings import Settings

__all__ = ["NullImageEngine", "create"]


class NullImageEngine:
    """Returns the same small PNG at once; no model work at all."""

    def __init__(self, png: bytes) -> None:
        self._result = GenerationResult(artifacts=[Artifact(png, "image/png", "png")])

    async def generate(
        self,
        request: GenerationRequest,  # noqa: ARG002 - the protocol's signature
        progress: ProgressCallback,  # noqa: ARG002
    ) -> GenerationResult:
        return self._result

    async def aclose(self) -> None:
        return None


def create() -> FastAPI:
    png = Path(os.environ["BENCH_PNG"]).read_bytes()

    def null_image(_context: EngineContext) -> NullImageEngine:
        return NullImageEngine(png)

    return create_app(Settings(), engines={"null-image": null_image})
