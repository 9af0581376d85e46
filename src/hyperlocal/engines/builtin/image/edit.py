"""Image edits: real classical operations where the prompt names them, an honest preview if not.

A prompt the grammar understands (``grammar.py``) is applied to the first source image, step by
step in the order written, and the result is the output: no caption, no badge. A prompt it does
not understand gets the preview instead: the source, unchanged, under a caption and the badge.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from hyperlocal.engines.base import GenerationRequest, MediaInput
from hyperlocal.engines.builtin.image.grammar import EditPlan, parse
from hyperlocal.engines.builtin.image.operation import Operation
from hyperlocal.engines.builtin.image.overlay import MAX_PROMPT_CHARS, badge, card, thumbnails
from hyperlocal.engines.builtin.image.transform import Resize, Scale
from hyperlocal.engines.media.image_codec import decode
from hyperlocal.engines.media.image_geometry import (
    Params,
    cover,
    output_size,
    ratio_size,
    text_param,
)

__all__ = ["Facts", "apply_edit", "apply_operations", "render_edit"]

Facts = dict[str, str]
WHITE = (255, 255, 255)
NO_SUBJECT = "no subject stood out from the backdrop, so the image was kept whole"


def render_edit(
    request: GenerationRequest, sources: Sequence[MediaInput]
) -> tuple[Image.Image, Facts]:
    """The edited image (RGB, or RGBA after a cut-out) and the facts to report about it."""
    images = [decode(media) for media in sources]
    prompt = text_param(request.params, "prompt")[:MAX_PROMPT_CHARS]
    plan = parse(prompt)
    if not plan.operations:
        return _preview(request, images, prompt), {"engine": "preview"}
    edited = apply_operations(images[0], plan.operations, request.params)
    return edited, _facts(plan, len(images), edited)


def apply_edit(image: Image.Image, prompt: str) -> Image.Image:
    """Applies the operations ``prompt`` names to ``image``, at its own size; for library use."""
    operations = parse(prompt).operations
    return _run(image, operations)


def apply_operations(
    source: Image.Image, operations: Sequence[Operation], params: Params
) -> Image.Image:
    """Runs ``operations`` in order and fits the result to the requested size.

    Without a resize step the work happens at the output's scale, so a blur radius means output
    pixels, and the result is fitted to ``size`` / ``aspect_ratio`` / ``resolution`` (keeping the
    edited shape when no aspect ratio is given). A resize step in the prompt is the most specific
    size asked for, so then the source is edited at its own scale and the result kept as is.
    """
    requested = output_size(params, source.size)  # checked even when the prompt sets the size
    if any(isinstance(op, Resize | Scale) for op in operations):
        return _run(source, operations)
    edited = _run(_at_long_side(source, max(requested)), operations)
    return cover(edited, output_size(params, edited.size))


def _run(image: Image.Image, operations: Sequence[Operation]) -> Image.Image:
    for operation in operations:
        image = operation.apply(image)
    return image


def _at_long_side(image: Image.Image, side: int) -> Image.Image:
    # Sized as output_size would size it, so an edit that keeps the shape needs no second resize.
    size = ratio_size(image.size, side)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def _facts(plan: EditPlan, sources: int, edited: Image.Image) -> Facts:
    facts = {"engine": "classical-edit", "operations": plan.labels}
    if plan.ignored:
        facts["ignored"] = plan.ignored
    if sources > 1:  # only the first image is edited; the others cannot be used classically
        facts["unused_images"] = str(sources - 1)
    if _opaque_cut_out(edited):
        facts["segmentation"] = NO_SUBJECT
    return facts


def _opaque_cut_out(image: Image.Image) -> bool:
    """A cut-out with no transparent pixel: nothing stood out from the backdrop to cut."""
    if image.mode != "RGBA":
        return False
    lowest, _ = image.getchannel("A").getextrema()
    return lowest == 255


def _preview(request: GenerationRequest, images: Sequence[Image.Image], prompt: str) -> Image.Image:
    image = cover(images[0], output_size(request.params, images[0].size))
    thumbnails(image, images[1:])
    label = f"{request.model or 'preview'} · edit preview, source unchanged"
    card(image, label, prompt or "untitled", WHITE, bottom=True)
    badge(image, WHITE)
    return image
