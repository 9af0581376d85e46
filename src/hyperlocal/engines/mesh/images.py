"""Input pictures for the mesh engines: decoded upright, alpha kept, at a working size."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from hyperlocal.engines.base import MediaInput
from hyperlocal.errors import GenerationError

__all__ = ["decode_view", "flatten"]

WORK_SIDE = 1024  # silhouettes and colours need no more; bigger inputs only cost time


def decode_view(media: MediaInput) -> Image.Image:
    """RGB, or RGBA when the picture has transparency (segmentation trusts a real alpha)."""
    try:
        with Image.open(io.BytesIO(media.data)) as opened:
            opened.draft("RGB", (WORK_SIDE, WORK_SIDE))
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise GenerationError(f"{media.field}: the image could not be decoded") from exc
    transparent = "A" in image.getbands() or "transparency" in image.info
    image = image.convert("RGBA" if transparent else "RGB")
    image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
    return image


def flatten(image: Image.Image) -> Image.Image:
    """RGB for colour sampling: transparent areas become white, never black."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image).convert("RGB")
