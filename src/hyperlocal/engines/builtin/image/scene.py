"""Text-to-image for the preview: a seeded landscape under a sky, captioned with the prompt.

The prompt's words pick the palette and the kind of scene (hills, sea, forest, skyline); a seed
from (model, prompt) picks everything else, so the same request always draws the same picture.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFilter

from hyperlocal.engines.base import GenerationRequest
from hyperlocal.engines.builtin.image.overlay import MAX_PROMPT_CHARS, badge, card
from hyperlocal.engines.builtin.image.palette import (
    PALETTE_OF,
    PALETTES,
    SCENE_OF,
    Palette,
    lerp,
    ramp,
)
from hyperlocal.engines.media.image_geometry import Box, Size, output_size, text_param

__all__ = ["render_scene"]

# Ridges from far to near: (baseline as a fraction of height, amplitude, waves across the width)
RIDGES = ((0.62, 0.05, 1.3), (0.73, 0.045, 1.9), (0.86, 0.035, 2.6))


def render_scene(request: GenerationRequest) -> Image.Image:
    """The text-to-image preview: a deterministic scene with the prompt on a card."""
    prompt = text_param(request.params, "prompt")[:MAX_PROMPT_CHARS]
    digest = hashlib.sha256(f"{request.model}\0{prompt}".encode()).digest()
    rng = random.Random(digest)
    words = [f for w in re.findall(r"[a-z]+", prompt.lower()) for f in (w, w.removesuffix("s"))]
    palette = PALETTES[_pick(words, PALETTE_OF, sorted(PALETTES), rng)]
    scene = _pick(words, SCENE_OF, ["hills", "hills", "waves", "forest"], rng)
    image = _sky(output_size(request.params, (1, 1)), palette, rng)
    sun_x = _sun(image, palette, rng, high=scene == "skyline")
    if scene == "skyline":
        _skyline(image, palette, rng)
    elif scene == "waves":
        _sea(image, palette, rng, sun_x)
    else:
        _ridges(image, palette, rng, trees=scene == "forest")
    _vignette(image)
    card(image, request.model or "preview", prompt or "untitled", palette.sun, bottom=False)
    badge(image, palette.sun)
    return image


def _pick(
    words: Sequence[str], table: Mapping[str, str], fallback: list[str], rng: random.Random
) -> str:
    """The entry of the first prompt word that ``table`` knows, else a seeded choice."""
    return next((table[w] for w in words if w in table), None) or rng.choice(fallback)


def _sky(size: Size, palette: Palette, rng: random.Random) -> Image.Image:
    # A small grid, resized with BICUBIC, is a smooth gradient at any size for almost no cost.
    sw, sh = (max(2, round(48 * side / max(size))) for side in size)
    tilt, phase = rng.uniform(-0.25, 0.25), rng.uniform(0, math.tau)
    small = Image.new("RGB", (sw, sh))
    small.putdata(
        [
            ramp(palette.sky, _sky_depth(x / (sw - 1), y / (sh - 1), tilt, phase))
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
        image.paste(lerp(palette.sky[-1], palette.land, (0.45, 0.72, 1.0)[depth]), mask=mask)


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
    stops = tuple(lerp(palette.sky[-1], palette.land, t) for t in (0.3, 0.7, 1.0))
    column = Image.new("RGB", (1, 32))
    column.putdata([ramp(stops, i / 31) for i in range(32)])
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
        colour = lerp(palette.sky[-1], palette.land, (0.55, 1.0)[depth])
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
