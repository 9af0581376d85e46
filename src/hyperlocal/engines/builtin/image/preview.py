"""The built-in ``preview-image`` engine: honest previews and real classical edits, on the CPU.

No text-to-image weights ship with hyperlocal, so text-to-image draws the request instead: a
seeded landscape in colours picked from the prompt, the prompt on a frosted card, and a corner
badge saying what it is (``scene.py``). Edits whose prompt names classical operations (crop,
resize, recolour, blur, sharpen, grayscale, background removal, ...) are really applied
(``edit.py``); any other edit is shown as a captioned preview of the source. The same request
always gives the same bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from hyperlocal.engines.base import (
    Artifact,
    Category,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.engines.builtin.image.edit import render_edit
from hyperlocal.engines.builtin.image.scene import render_scene
from hyperlocal.engines.media.image_codec import encode, output_format
from hyperlocal.errors import GenerationError

__all__ = ["PreviewImageEngine", "Rendering", "create", "render", "render_result"]

SOURCE_FIELDS = ("images", "image")
JPEG_ALPHA_NOTE = "cut-out flattened onto white: jpeg has no alpha channel"


@dataclass(frozen=True, slots=True)
class Rendering:
    artifact: Artifact
    extra: Mapping[str, str]  # what was done: {"engine": "preview" | "classical-edit", ...}


def create(context: EngineContext) -> PreviewImageEngine:
    """The registry factory for the ``preview-image`` engine."""
    return PreviewImageEngine(context)


class PreviewImageEngine:
    """Renders text-to-image previews and image edits (CPU, Pillow, numpy, scipy)."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await progress(0.0, "rendering image")
        rendering = await asyncio.to_thread(render_result, request)
        await progress(1.0, f"image rendered ({rendering.extra['engine']})")
        return GenerationResult(artifacts=[rendering.artifact], extra=rendering.extra)

    async def aclose(self) -> None:
        return None


def render(request: GenerationRequest) -> Artifact:
    """Draws (or edits) and encodes one image; blocking, so the engine runs it in a thread."""
    return render_result(request).artifact


def render_result(request: GenerationRequest) -> Rendering:
    """``render``, with the facts about what was done that the engine reports in ``extra``."""
    fmt = output_format(request.params)
    sources = [m for key in SOURCE_FIELDS for m in request.media.get(key, ())]
    if sources:
        image, extra = render_edit(request, sources)
    elif request.category is Category.IMAGE_EDIT:
        raise GenerationError("image_edit needs at least one source image")
    else:
        image, extra = render_scene(request), {"engine": "preview"}
    if image.mode == "RGBA" and fmt == "jpeg":
        extra["alpha"] = JPEG_ALPHA_NOTE
    return Rendering(encode(image, fmt), extra)
