"""Decoding source images and encoding results as PNG or JPEG."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from hyperlocal.engines.base import Artifact, MediaInput
from hyperlocal.engines.image.geometry import MAX_SIDE, Params, text_param
from hyperlocal.errors import GenerationError

__all__ = ["FORMATS", "decode", "encode", "flatten", "output_format"]

FORMATS = {"png": ("PNG", "image/png", "png"), "jpeg": ("JPEG", "image/jpeg", "jpg")}
WHITE = (255, 255, 255)


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
        flat = flatten(image, WHITE) if image.mode == "RGBA" else image
        flat.save(buffer, pil_format, quality=90)
    else:  # level 6 costs seconds at 4k for little gain; 1 keeps big edits fast
        level = 6 if image.width * image.height <= 2_500_000 else 1
        image.save(buffer, pil_format, compress_level=level)
    return Artifact(data=buffer.getvalue(), content_type=content_type, extension=extension)


def decode(media: MediaInput) -> Image.Image:
    """An RGB image, upright per its EXIF, with any transparency flattened onto white."""
    try:
        with Image.open(io.BytesIO(media.data)) as opened:
            opened.draft("RGB", (MAX_SIDE, MAX_SIDE))  # big JPEGs decode at a reduced scale
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise GenerationError(f"{media.field}: the source image could not be decoded") from exc
    if "A" in image.getbands() or "transparency" in image.info:
        return flatten(image.convert("RGBA"), WHITE)
    return image.convert("RGB")


def flatten(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """Composites an RGBA image over a solid ``colour``, giving RGB."""
    backdrop = Image.new("RGBA", image.size, (*colour, 255))
    return Image.alpha_composite(backdrop, image).convert("RGB")
