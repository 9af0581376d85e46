"""Input pictures for the mesh engines: decoded upright, alpha kept, at a working size."""

from __future__ import annotations

from PIL import Image

from hyperlocal.engines.base import MediaInput
from hyperlocal.engines.media.image_codec import decode

__all__ = ["decode_view"]

WORK_SIDE = 1024  # silhouettes and colours need no more; bigger inputs only cost time


def decode_view(media: MediaInput) -> Image.Image:
    """RGB, or RGBA when the picture has transparency (segmentation trusts a real alpha)."""
    image = decode(media, keep_alpha=True, draft_side=WORK_SIDE)
    image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
    return image
