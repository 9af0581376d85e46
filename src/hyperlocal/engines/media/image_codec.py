"""Decoding source images and encoding results as PNG or JPEG."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from hyperlocal.engines.base import Artifact, MediaInput
from hyperlocal.engines.media.alpha import flatten, has_transparency
from hyperlocal.engines.media.image_geometry import MAX_SIDE, Params, text_param
from hyperlocal.errors import GenerationError

__all__ = ["FORMATS", "decode", "encode", "output_format"]

FORMATS = {"png": ("PNG", "image/png", "png"), "jpeg": ("JPEG", "image/jpeg", "jpg")}


def output_format(params: Params) -> str:
    fmt = text_param(params, "output_format").lower() or "png"
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise GenerationError(f"output_format must be png or jpeg, not {fmt!r}")
    return fmt


def encode(image: Image.Image, fmt: str) -> Artifact:
    """PNG keeps an alpha channel; JPEG has none, so a transparent image is put on white."""
    pil_format, content_type, extension = FORMATS[fmt]
    buffer = io.BytesIO()
    if fmt == "jpeg":
        flat = flatten(image) if image.mode == "RGBA" else image
        flat.save(buffer, pil_format, quality=90)
    else:  # level 6 costs seconds at 4k for little gain; 1 keeps big edits fast
        level = 6 if image.width * image.height <= 2_500_000 else 1
        image.save(buffer, pil_format, compress_level=level)
    return Artifact(data=buffer.getvalue(), content_type=content_type, extension=extension)


def decode(
    media: MediaInput, *, keep_alpha: bool = False, draft_side: int = MAX_SIDE
) -> Image.Image:
    """The image upright per its EXIF: RGB, with any transparency flattened onto white, or RGBA
    when ``keep_alpha`` and it has transparency. Big JPEGs decode at a reduced scale, no smaller
    than ``draft_side`` (the most the caller will work at).
    """
    try:
        with Image.open(io.BytesIO(media.data)) as opened:
            opened.draft("RGB", (draft_side, draft_side))
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise GenerationError(f"{media.field}: the source image could not be decoded") from exc
    if keep_alpha and has_transparency(image):
        return image.convert("RGBA")
    return flatten(image)
