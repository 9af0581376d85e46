"""The built-in ``preview`` image engine: an honest placeholder, not a diffusion model.

No text-to-image weights ship with hyperlocal, so this engine draws the request instead: a sky
gradient in a palette picked from the prompt's words, a few soft shapes, the prompt on a frosted
card, and a corner badge saying what it is. Edits keep the first source image, fitted to the
requested shape, and caption it the same way. The same (model, prompt) always gives the same
bytes. Only Pillow is used, so it runs anywhere the server does.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from hyperlocal.engines.base import (
    Artifact,
    Category,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    MediaInput,
    ProgressCallback,
)
from hyperlocal.errors import GenerationError

__all__ = ["BADGE", "PreviewImageEngine", "apply_edit", "create", "render"]

RGB = tuple[int, int, int]
Size = tuple[int, int]
Box = tuple[int, int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Params = Mapping[str, InputValue]

BADGE = "hyperlocal preview · not a diffusion model"
LONG_SIDES = {"1k": 1024, "2k": 2048, "4k": 4096}
MIN_SIDE, MAX_SIDE = 64, 4096
FORMATS = {"png": ("PNG", "image/png", "png"), "jpeg": ("JPEG", "image/jpeg", "jpg")}
SOURCE_FIELDS = ("images", "image")
MAX_PROMPT_CHARS = 600  # bounds text layout work; the card could not show more anyway


@dataclass(frozen=True, slots=True)
class Palette:
    sky: tuple[RGB, ...]  # from the top of the sky down to the horizon
    sun: RGB
    land: RGB
    night: bool = False


# Hex colours: the sky from top to horizon / the sun (or moon) / the nearest land.
_PALETTE_HEX = {
    "sunset": "281a54 943070 f06854 ffbe6e / ffe6aa / 2e1436",
    "ocean": "0c2c60 1c68a8 60b2d6 c8eaf2 / fffae8 / 0a3462",
    "forest": "183e3c 3c7c62 96c496 e6eecc / fff6d6 / 122e24",
    "night": "040618 10163e 302c70 74549c / ececff / 080818",
    "dawn": "607cd2 b09cdc fabec4 ffe4cc / fff4de / 463e76",
    "desert": "4080c8 8cbade f4d2a0 ecaa6e / fff6dc / 96522c",
    "ember": "380816 92162a e44c3c ffb078 / ffdeaa / 260610",
    "autumn": "3e2840 b05834 ea9640 fad68c / ffeebe / 401e16",
    "winter": "466896 8cb2d4 d2e4f0 f6fafc / ffffff / 5c7696",
    "dream": "3a246e 7c4eb0 d68ccc fad2e2 / fff0f8 / 341e56",
}


def _palette(name: str, spec: str) -> Palette:
    sky, sun, land = ([_hex(c) for c in part.split()] for part in spec.split("/"))
    return Palette(tuple(sky), sun[0], land[0], night=name == "night")


def _hex(colour: str) -> RGB:
    return int(colour[:2], 16), int(colour[2:4], 16), int(colour[4:], 16)


PALETTES = {name: _palette(name, spec) for name, spec in _PALETTE_HEX.items()}
_PALETTE_WORDS = {
    "sunset": "sunset sundown dusk evening golden orange warm",
    "ocean": "ocean sea beach wave water lake river coast blue underwater surf island",
    "forest": "forest tree jungle wood woods green garden meadow grass leaf nature moss",
    "night": "night moon star city midnight dark neon space galaxy cyberpunk",
    "dawn": "dawn sunrise morning sky cloud mountain soft",
    "desert": "desert sand dune canyon sahara",
    "ember": "red fire lava volcano crimson rose flame dragon",
    "autumn": "autumn fall gold leaves harvest pumpkin",
    "winter": "snow winter ice frost cold arctic white",
    "dream": "purple violet lavender dream pastel spring flower cherry magic fairy",
}
_SCENE_WORDS = {
    "waves": "ocean sea beach wave water lake coast surf underwater island",
    "skyline": "city town street building skyline urban neon skyscraper cyberpunk downtown",
    "forest": "forest tree pine jungle wood woods taiga",
}
PALETTE_OF = {w: name for name, words in _PALETTE_WORDS.items() for w in words.split()}
SCENE_OF = {w: name for name, words in _SCENE_WORDS.items() for w in words.split()}
# Ridges from far to near: (baseline as a fraction of height, amplitude, waves across the width)
RIDGES = ((0.62, 0.05, 1.3), (0.73, 0.045, 1.9), (0.86, 0.035, 2.6))


def create(context: EngineContext) -> PreviewImageEngine:
    """The registry factory for the ``preview`` engine."""
    return PreviewImageEngine(context)


class PreviewImageEngine:
    """Renders text-to-image and image-edit requests as honest preview cards (CPU, Pillow)."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await progress(0.0, "rendering preview image")
        artifact = await asyncio.to_thread(render, request)
        await progress(1.0, "preview image rendered")
        return GenerationResult(artifacts=[artifact], extra={"engine": "preview"})

    async def aclose(self) -> None:
        return None


def render(request: GenerationRequest) -> Artifact:
    """Draws and encodes one image; blocking, so the engine runs it in a thread."""
    fmt = _output_format(request.params)
    sources = [m for key in SOURCE_FIELDS for m in request.media.get(key, ())]
    if sources:
        image = _render_edit(request, sources)
    elif request.category is Category.IMAGE_EDIT:
        raise GenerationError("image_edit needs at least one source image")
    else:
        image = _render_scene(request)
    return _encode(image, fmt)


def apply_edit(image: Image.Image, prompt: str) -> Image.Image:
    """The hook where real classical edits (crop, tone, blur, ...) parsed from the prompt go.

    None are implemented yet, so the image comes back unchanged; the caption tells the truth.
    """
    del prompt
    return image


# -- sizes and formats -------------------------------------------------------------------------


def _text(params: Params, key: str) -> str:
    value = params.get(key)
    return value.strip() if isinstance(value, str) else ""


def _output_format(params: Params) -> str:
    fmt = _text(params, "output_format").lower() or "png"
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise GenerationError(f"output_format must be png or jpeg, not {fmt!r}")
    return fmt


def _output_size(params: Params, fallback_ratio: Size) -> Size:
    if size := _text(params, "size"):
        return _parse_size(size)
    ratio = _text(params, "aspect_ratio")
    resolution = _text(params, "resolution").lower() or "1k"
    if resolution not in LONG_SIDES:
        raise GenerationError(f"resolution must be 1k, 2k or 4k, not {resolution!r}")
    parsed = fallback_ratio if ratio in ("", "auto", "match_input_image") else _parse_ratio(ratio)
    return _ratio_size(parsed, LONG_SIDES[resolution])


def _parse_size(text: str) -> Size:
    match = re.fullmatch(r"(\d+)\s*x\s*(\d+)", text.lower())
    if not match or not all(MIN_SIDE <= int(v) <= MAX_SIDE for v in match.groups()):
        raise GenerationError(f"size must be WIDTHxHEIGHT within {MIN_SIDE}..{MAX_SIDE}")
    return int(match[1]), int(match[2])


def _parse_ratio(text: str) -> Size:
    match = re.fullmatch(r"(\d+)\s*:\s*(\d+)", text)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise GenerationError(f"aspect_ratio must look like 16:9, not {text!r}")
    return int(match[1]), int(match[2])


def _ratio_size(ratio: Size, long_side: int) -> Size:
    rw, rh = ratio
    short = max(MIN_SIDE, 2 * round(long_side * min(rw, rh) / max(rw, rh) / 2))
    return (long_side, short) if rw >= rh else (short, long_side)


def _encode(image: Image.Image, fmt: str) -> Artifact:
    pil_format, content_type, extension = FORMATS[fmt]
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.save(buffer, pil_format, quality=90)
    else:  # level 6 costs seconds at 4k for little gain; 1 keeps big edits fast
        level = 6 if image.width * image.height <= 2_500_000 else 1
        image.save(buffer, pil_format, compress_level=level)
    return Artifact(data=buffer.getvalue(), content_type=content_type, extension=extension)


# -- text-to-image: the scene ------------------------------------------------------------------


def _render_scene(request: GenerationRequest) -> Image.Image:
    prompt = _text(request.params, "prompt")[:MAX_PROMPT_CHARS]
    digest = hashlib.sha256(f"{request.model}\0{prompt}".encode()).digest()
    rng = random.Random(digest)
    words = [f for w in re.findall(r"[a-z]+", prompt.lower()) for f in (w, w.removesuffix("s"))]
    palette = PALETTES[_pick(words, PALETTE_OF, sorted(PALETTES), rng)]
    scene = _pick(words, SCENE_OF, ["hills", "hills", "waves", "forest"], rng)
    image = _sky(_output_size(request.params, (1, 1)), palette, rng)
    sun_x = _sun(image, palette, rng, high=scene == "skyline")
    if scene == "skyline":
        _skyline(image, palette, rng)
    elif scene == "waves":
        _sea(image, palette, rng, sun_x)
    else:
        _ridges(image, palette, rng, trees=scene == "forest")
    _vignette(image)
    _card(image, request.model or "preview", prompt or "untitled", palette.sun, bottom=False)
    _badge(image, palette.sun)
    return image


def _pick(
    words: Sequence[str], table: Mapping[str, str], fallback: list[str], rng: random.Random
) -> str:
    """The entry of the first prompt word that ``table`` knows, else a seeded choice."""
    return next((table[w] for w in words if w in table), None) or rng.choice(fallback)


def _lerp(a: RGB, b: RGB, t: float) -> RGB:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return r, g, bl


def _ramp(stops: Sequence[RGB], t: float) -> RGB:
    scaled = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(scaled), len(stops) - 2)
    return _lerp(stops[i], stops[i + 1], scaled - i)


def _sky(size: Size, palette: Palette, rng: random.Random) -> Image.Image:
    # A small grid, resized with BICUBIC, is a smooth gradient at any size for almost no cost.
    sw, sh = (max(2, round(48 * side / max(size))) for side in size)
    tilt, phase = rng.uniform(-0.25, 0.25), rng.uniform(0, math.tau)
    small = Image.new("RGB", (sw, sh))
    small.putdata(
        [
            _ramp(palette.sky, _sky_depth(x / (sw - 1), y / (sh - 1), tilt, phase))
            for y in range(sh)
            for x in range(sw)
        ]
    )
    return small.resize(size, Image.Resampling.BICUBIC)


def _sky_depth(x: float, y: float, tilt: float, phase: float) -> float:
    """Where (x, y), both 0..1, falls on the palette: mostly height, tilted, gently waved."""
    return y / 0.8 + (x - 0.5) * tilt + 0.05 * math.sin(math.tau * x + phase)


def _soft_disc(size: Size, centre: tuple[float, float], radius: float, blur: float) -> Image.Image:
    # Drawn and blurred at 1/8 scale, then enlarged: soft glows cost next to nothing.
    scale = 8
    small = Image.new("L", (size[0] // scale + 1, size[1] // scale + 1))
    cx, cy, r = centre[0] / scale, centre[1] / scale, radius / scale
    ImageDraw.Draw(small).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    small = small.filter(ImageFilter.GaussianBlur(blur / scale))
    return small.resize(size, Image.Resampling.BICUBIC)


def _sun(image: Image.Image, palette: Palette, rng: random.Random, high: bool) -> float:
    w, h = image.size
    unit = min(w, h)
    cx, cy = rng.uniform(0.22, 0.78) * w, rng.uniform(0.14, 0.22 if high else 0.28) * h
    radius = unit * (0.06 if high else 0.075)
    if palette.night:
        _stars(image, rng)
    halo = _soft_disc(image.size, (cx, cy), radius * 2.6, radius * 1.6)
    image.paste(palette.sun, mask=halo.point(lambda v: v * 45 // 100))
    disc = Image.new("L", image.size)
    ImageDraw.Draw(disc).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=240)
    image.paste(palette.sun, mask=disc.filter(ImageFilter.GaussianBlur(unit / 800)))
    return cx


def _stars(image: Image.Image, rng: random.Random) -> None:
    w, h = image.size
    mask = Image.new("L", image.size)
    draw = ImageDraw.Draw(mask)
    for _ in range(w * h // 5000):
        x, y = rng.uniform(0, w), rng.uniform(0, 1) ** 1.6 * h * 0.75
        r = rng.choice((0.6, 0.8, 1.0, 1.5))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=rng.randint(90, 255))
    image.paste((255, 255, 255), mask=mask)


def _ridge_line(
    size: Size, rng: random.Random, ridge: tuple[float, float, float]
) -> list[tuple[float, float]]:
    (w, h), (base, amplitude, waves) = size, ridge
    harmonics = [
        (waves * k * rng.uniform(0.7, 1.3), rng.uniform(0, math.tau), amplitude / k**1.4)
        for k in (1.0, 2.2, 4.1)
    ]
    return [
        (x, h * (base + sum(a * math.sin(math.tau * f * x / w + p) for f, p, a in harmonics)))
        for x in range(0, w + 8, 8)
    ]


def _ridges(image: Image.Image, palette: Palette, rng: random.Random, *, trees: bool) -> None:
    w, h = image.size
    for depth, ridge in enumerate(RIDGES):
        line = _ridge_line(image.size, rng, ridge)
        mask = Image.new("L", image.size)
        draw = ImageDraw.Draw(mask)
        draw.polygon([*line, (w, h), (0, h)], fill=255)
        if trees and depth > 0:
            _pines(draw, rng, line, min(w, h) * (0.05, 0.08, 0.13)[depth])
        mask = mask.filter(ImageFilter.GaussianBlur((3 - depth) * min(w, h) / 900))
        image.paste(_lerp(palette.sky[-1], palette.land, (0.45, 0.72, 1.0)[depth]), mask=mask)


def _pines(
    draw: ImageDraw.ImageDraw, rng: random.Random, line: Sequence[tuple[float, float]], tall: float
) -> None:
    x = rng.uniform(0, tall * 0.3)
    while x < line[-1][0]:
        height = tall * rng.uniform(0.55, 1.0)
        base = line[min(len(line) - 1, round(x / 8))][1] + height * 0.08
        for tier in range(3):
            top, half = base - height * (1 - tier * 0.22), height * (0.16 + tier * 0.05)
            draw.polygon(
                [(x, top), (x - half, top + height * 0.5), (x + half, top + height * 0.5)], fill=255
            )
        x += tall * rng.uniform(0.18, 0.5)


def _sea(image: Image.Image, palette: Palette, rng: random.Random, sun_x: float) -> None:
    w, h = image.size
    horizon = round(h * 0.64)
    stops = tuple(_lerp(palette.sky[-1], palette.land, t) for t in (0.3, 0.7, 1.0))
    column = Image.new("RGB", (1, 32))
    column.putdata([_ramp(stops, i / 31) for i in range(32)])
    image.paste(column.resize((w, h - horizon), Image.Resampling.BICUBIC), (0, horizon))
    swells = Image.new("L", image.size)
    draw = ImageDraw.Draw(swells)
    for i in range(8):  # swells, spaced and thickened as they come nearer
        t = (i + 1) / 9
        y, amp = horizon + (h - horizon) * t**1.4, h * 0.005 * (1 + 2 * t)
        phase, freq = rng.uniform(0, math.tau), rng.uniform(1.5, 3.0)
        points = [
            (x, y + amp * math.sin(math.tau * freq * x / w + phase)) for x in range(0, w + 8, 8)
        ]
        draw.line(points, fill=round(40 + 50 * t), width=max(2, round(h * 0.012 * t)))
    image.paste(palette.land, mask=swells.filter(ImageFilter.GaussianBlur(h * 0.004)))
    image.paste(palette.sun, mask=_glitter(rng, (sun_x, horizon), image.size))


def _glitter(rng: random.Random, origin: tuple[float, float], size: Size) -> Image.Image:
    """The sun's (or moon's) broken reflection: short bright dashes that widen toward us."""
    (w, h), (sun_x, horizon) = size, origin
    mask = Image.new("L", size)
    draw = ImageDraw.Draw(mask)
    for _ in range(70):
        t = rng.random() ** 1.3
        y = horizon + 3 + t * (h - horizon)
        x = sun_x + rng.gauss(0, w * (0.012 + 0.05 * t))
        half, thick = w * rng.uniform(0.008, 0.03) * (0.5 + t), h * 0.0012 * (1 + 1.5 * t)
        draw.ellipse(
            (x - half, y - thick, x + half, y + thick),
            fill=round(rng.uniform(80, 210) * (1 - 0.5 * t)),
        )
    return mask.filter(ImageFilter.GaussianBlur(h * 0.0012))


def _skyline(image: Image.Image, palette: Palette, rng: random.Random) -> None:
    w, h = image.size
    draw = ImageDraw.Draw(image, "RGBA")
    for depth, (low, high) in enumerate(((0.22, 0.42), (0.14, 0.34))):
        colour = _lerp(palette.sky[-1], palette.land, (0.55, 1.0)[depth])
        x = -rng.uniform(0, 0.05) * w
        while x < w:
            bw = rng.uniform(0.06, 0.12) * w
            top = h * (1 - rng.uniform(low, high))
            draw.rectangle((x, top, x + bw, h), fill=colour)
            if depth == 1:
                _windows(draw, rng, (round(x), round(top), round(x + bw), h), palette.night)
            x += bw + rng.uniform(-0.01, 0.015) * w


def _windows(draw: ImageDraw.ImageDraw, rng: random.Random, box: Box, night: bool) -> None:
    x0, y0, x1, y1 = box
    size = max(2, (x1 - x0) // 9)
    lit = (255, 214, 140) if night else (255, 255, 255)
    for y in range(y0 + size, y1 - size, size * 2):
        for x in range(x0 + size, x1 - size, size * 2):
            if rng.random() < (0.35 if night else 0.2):
                draw.rectangle((x, y, x + size - 1, y + size), fill=(*lit, rng.randint(60, 200)))


def _vignette(image: Image.Image) -> None:
    mask = Image.radial_gradient("L").resize(image.size, Image.Resampling.BICUBIC)
    image.paste((0, 0, 0), mask=mask.point(lambda v: v * v // 900))


# -- image edit --------------------------------------------------------------------------------


def _render_edit(request: GenerationRequest, sources: Sequence[MediaInput]) -> Image.Image:
    images = [_decode(media) for media in sources]
    prompt = _text(request.params, "prompt")[:MAX_PROMPT_CHARS]
    size = _output_size(request.params, images[0].size)
    image = apply_edit(_cover(images[0], size), prompt)
    _thumbnails(image, images[1:])
    label = f"{request.model or 'preview'} · edit preview, source unchanged"
    _card(image, label, prompt or "untitled", (255, 255, 255), bottom=True)
    _badge(image, (255, 255, 255))
    return image


def _decode(media: MediaInput) -> Image.Image:
    try:
        with Image.open(io.BytesIO(media.data)) as opened:
            opened.draft("RGB", (MAX_SIDE, MAX_SIDE))  # big JPEGs decode at a reduced scale
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise GenerationError(f"{media.field}: the source image could not be decoded") from exc
    if "A" in image.getbands() or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def _cover(image: Image.Image, size: Size) -> Image.Image:
    """Scales to fill ``size``, cropping the overflow evenly from both sides."""
    (sw, sh), (w, h) = image.size, size
    scale = max(w / sw, h / sh)
    cw, ch = w / scale, h / scale
    box = ((sw - cw) / 2, (sh - ch) / 2, (sw + cw) / 2, (sh + ch) / 2)
    return image.resize(size, Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)


def _thumbnails(image: Image.Image, others: Sequence[Image.Image]) -> None:
    unit = min(image.size)
    side, gap, border = round(unit * 0.16), round(unit * 0.02), max(2, round(unit * 0.006))
    margin = round(unit * 0.035)
    fits = max(0, (image.width - 2 * margin + gap) // (side + gap))
    draw = ImageDraw.Draw(image, "RGBA")
    for i, other in enumerate(others[:fits]):
        x = margin + i * (side + gap)
        draw.rectangle(
            (x + border, margin + border, x + side + border, margin + side + border),
            fill=(0, 0, 0, 80),
        )
        draw.rectangle((x, margin, x + side - 1, margin + side - 1), fill=(255, 255, 255))
        inner = side - 2 * border
        image.paste(_cover(other, (inner, inner)), (x + border, margin + border))


# -- shared overlays: frosted card and badge ---------------------------------------------------


def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _frost(image: Image.Image, box: Box, radius: int) -> None:
    """Blurs and darkens ``box`` behind a rounded mask: a glass panel that keeps text legible."""
    x0, y0, x1, y1 = box
    region = image.crop(box)
    small = region.resize((max(1, (x1 - x0) // 12), max(1, (y1 - y0) // 12)), Image.Resampling.BOX)
    blurred = small.filter(ImageFilter.GaussianBlur(2)).resize(
        region.size, Image.Resampling.BICUBIC
    )
    glass = Image.blend(blurred, Image.new("RGB", region.size, (14, 16, 28)), 0.48)
    mask = Image.new("L", region.size)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, x1 - x0 - 1, y1 - y0 - 1), radius, fill=255)
    image.paste(glass, (x0, y0), mask.filter(ImageFilter.GaussianBlur(0.7)))
    outline = (255, 255, 255, 48)
    width = max(1, min(image.size) // 700)
    ImageDraw.Draw(image, "RGBA").rounded_rectangle(
        (x0, y0, x1 - 1, y1 - 1), radius, outline=outline, width=width
    )


def _wrap(text: str, font: Font, width: float, size: int) -> list[str]:
    longest = max(4, int(width / (size * 0.62)))  # hard-break URLs and other unbroken runs
    words = [w[i : i + longest] for w in text.split() for i in range(0, len(w), longest)]
    lines: list[str] = []
    for word in words:
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(trial) <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def _fit_text(text: str, width: float, size: float, max_lines: int) -> tuple[Font, int, list[str]]:
    for scale in (1.0, 0.86, 0.74, 0.64):
        px = max(10, round(size * scale))
        font = _font(px)
        lines = _wrap(text, font, width, px)
        if len(lines) <= max_lines:
            return font, px, lines
    last = lines[max_lines - 1]
    while last and font.getlength(last + "…") > width:
        last = last[:-1]
    return font, px, [*lines[: max_lines - 1], last.rstrip() + "…"]


def _card(image: Image.Image, label: str, text: str, accent: RGB, *, bottom: bool) -> None:
    """A frosted card: a small label over the wrapped text, centred or as a bottom caption."""
    (w, h), unit = image.size, min(image.size)
    margin, pad, label_px = round(unit * 0.035), round(unit * 0.045), max(10, round(unit * 0.022))
    card_w = w - 2 * margin if bottom else round(min(w * 0.8, unit * 1.9))
    text_px = unit * (0.042 if bottom else 0.056)
    font, px, lines = _fit_text(text, card_w - 2 * pad, text_px, 2 if bottom else 5)
    card_h = 2 * pad + round(label_px * 2.1) + round(px * 1.3) * len(lines)
    x0 = (w - card_w) // 2
    y0 = h - margin - _badge_height(unit) - margin // 2 - card_h if bottom else (h - card_h) // 2
    _frost(image, (x0, y0, x0 + card_w, y0 + card_h), round(unit * 0.03))
    draw = ImageDraw.Draw(image, "RGBA")
    draw.text((w / 2, y0 + pad), label, font=_font(label_px), fill=(*accent, 210), anchor="mt")
    top, line_h = y0 + pad + round(label_px * 2.1), round(px * 1.3)
    for i, line in enumerate(lines):
        middle = (w / 2, top + i * line_h + line_h / 2)
        draw.text(middle, line, font=font, fill=(255, 255, 255, 240), anchor="mm")


def _badge_height(unit: int) -> int:
    return round(max(11, round(unit * 0.019)) * 1.9)


def _badge(image: Image.Image, accent: RGB) -> None:
    w, h = image.size
    unit, margin = min(w, h), round(min(w, h) * 0.035)
    px = max(11, round(unit * 0.019))
    font = _font(px)
    bh = _badge_height(unit)
    bw = round(font.getlength(BADGE) + px * 2.6)
    x0, y0 = w - margin - bw, h - margin - bh
    _frost(image, (x0, y0, x0 + bw, y0 + bh), bh // 2)
    draw = ImageDraw.Draw(image, "RGBA")
    dot = px * 0.28
    cx, cy = x0 + px * 0.95, y0 + bh / 2
    draw.ellipse((cx - dot, cy - dot, cx + dot, cy + dot), fill=(*accent, 255))
    draw.text((x0 + px * 1.6, cy), BADGE, font=font, fill=(255, 255, 255, 225), anchor="lm")
