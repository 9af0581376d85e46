"""What the preview draws over an image: a frosted caption card, the badge, source thumbnails.

The badge is how a preview owns up to being one; classical edits never carry it.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from hyperlocal.engines.builtin.image.palette import RGB
from hyperlocal.engines.media.image_geometry import Box, cover

__all__ = ["BADGE", "MAX_PROMPT_CHARS", "badge", "card", "thumbnails"]

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

BADGE = "hyperlocal preview · not a diffusion model"
MAX_PROMPT_CHARS = 600  # bounds text layout work; the card could not show more anyway


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


def card(image: Image.Image, label: str, text: str, accent: RGB, *, bottom: bool) -> None:
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


def badge(image: Image.Image, accent: RGB) -> None:
    """The corner badge that says this is a preview, not a diffusion model's output."""
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


def thumbnails(image: Image.Image, others: Sequence[Image.Image]) -> None:
    """The extra source images as a row of framed squares along the top edge."""
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
        image.paste(cover(other, (inner, inner)), (x + border, margin + border))
