"""The edit-prompt grammar: keywords and numbers, each phrase one classical operation.

Each rule is a regular expression over the lower-cased prompt. All rules' matches are found and
taken left to right; where two overlap, the earlier (then the longer) wins, so "blur the
background" is one step and not a whole-image blur. A phrase right after a negation ("don't
blur", "no sharpening") is used up but not applied. Words that no rule used, less filler, are
reported as ignored, so a caller can see which part of a prompt was not understood.

Phrases understood (N is a number, C a colour name or ``#rrggbb``):

- crop: ``crop to the center square`` / ``square crop``, ``crop to 16:9``, ``crop 20%`` (trims
  20%, keeping the centre), ``crop to 60%`` (keeps the centre 60%), ``crop to the left half``,
  ``zoom in [2x]``
- size: ``resize to 512x512``, ``scale to 50%``, ``shrink by 25%``, ``upscale 2x``, ``half size``
- turn: ``rotate [by] [N degrees] [clockwise | counterclockwise | left | right]`` (90 clockwise by
  default), ``upside down``, ``flip [horizontally | vertically]``, ``mirror``
- colour: ``grayscale`` / ``black and white`` / ``monochrome`` / ``desaturate``, ``sepia``,
  ``invert [colours]`` / ``negative``, ``warmer``, ``cooler``, ``tint C`` / ``C tint`` /
  ``make it C`` (a partial tint), ``recolour C`` / ``colourise C`` (a full duotone)
- tone: ``increase | decrease | more | less brightness | contrast | saturation [by N%]``,
  ``contrast +20%``, ``brighter``, ``darker``, ``more vivid``, ``muted``
- detail: ``blur [N]`` / ``soften``, ``sharpen [N]``
- backdrop: ``remove the background`` / ``cut out`` / ``transparent background``,
  ``replace the background with C`` / ``C background``, ``blur the background [N]``
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from PIL import ImageColor

from hyperlocal.engines.builtin.image.adjust import (
    Blur,
    Enhance,
    Grayscale,
    Invert,
    Quality,
    Sepia,
    Sharpen,
    Temperature,
    Tint,
)
from hyperlocal.engines.builtin.image.background import (
    BlurBackground,
    RemoveBackground,
    ReplaceBackground,
)
from hyperlocal.engines.builtin.image.operation import Operation, number
from hyperlocal.engines.builtin.image.palette import RGB
from hyperlocal.engines.builtin.image.transform import AspectCrop, Crop, Flip, Resize, Rotate, Scale
from hyperlocal.engines.media.image_geometry import clamp_size

__all__ = ["EditPlan", "parse"]

Match = re.Match[str]

NUM = r"(?P<n>\d+(?:\.\d+)?)"
PCT = NUM + r"\s*(?:%|percent)"
OBJ = r"(?:\s+(?:it|this|that|everything|the\s+(?:whole\s+|entire\s+)?(?:image|photo|picture)))?"
_TINTS = "red orange yellow green teal cyan blue navy purple violet magenta pink brown gold"
_NEUTRALS = "white black gray grey"
COLOUR = rf"(?P<c>#[0-9a-f]{{6}}|{'|'.join(_TINTS.split())})\b"
BACKDROP = rf"(?P<c>#[0-9a-f]{{6}}|{'|'.join((_TINTS + ' ' + _NEUTRALS).split())})\b"
RESIZE = r"\b(?P<verb>resize|rescale|scale|downscale|upscale|downsize|shrink|enlarge)\b" + OBJ
SHRINKING = ("downscale", "downsize", "shrink")
CENTRE = r"(?:(?:center|centre|middle|central)\s+)?"
# A phrase within two words after one of these is not done: "don't make it darker".
NEGATED = re.compile(r"\b(?:don'?t|do\s+not|never|without|no|not)\s+(?:[\w']+\s+){0,2}$")
_FILLER = """a an the it its this that to of with by and or then also please can could would
    you me my i image photo picture make just some bit little slightly very too so in on up into
    as well is be now do don t not no never without one off subject put"""
FILLER = frozenset(_FILLER.split())


@dataclass(frozen=True, slots=True)
class EditPlan:
    operations: tuple[Operation, ...]
    ignored: str  # the prompt's words that no rule used, less filler; "" if all was understood

    @property
    def labels(self) -> str:
        return ",".join(op.label for op in self.operations)


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: re.Pattern[str]
    build: Callable[[Match], Operation]


def parse(prompt: str) -> EditPlan:
    """The operations ``prompt`` asks for, in the order it names them."""
    text = prompt.lower().replace("\u2019", "'")
    found = [(m, rule) for rule in RULES for m in rule.pattern.finditer(text)]
    found.sort(key=lambda hit: (hit[0].start(), -hit[0].end()))
    operations: list[Operation] = []
    spans: list[tuple[int, int]] = []
    for match, rule in found:
        if spans and match.start() < spans[-1][1]:
            continue
        spans.append(match.span())
        if not NEGATED.search(text, 0, match.start()):
            operations.append(rule.build(match))
    return EditPlan(tuple(operations), _leftover(text, spans))


def _leftover(text: str, spans: list[tuple[int, int]]) -> str:
    starts = [0, *(end for _, end in spans)]
    ends = [*(start for start, _ in spans), len(text)]
    gaps = " ".join(text[a:b] for a, b in zip(starts, ends, strict=True))
    return " ".join(w for w in re.findall(r"[a-z]+", gaps) if w not in FILLER)


def _number(match: Match, low: float, high: float) -> float | None:
    value = match.groupdict().get("n")
    return None if value is None else min(high, max(low, float(value)))


def _rgb(name: str) -> RGB:
    r, g, b = ImageColor.getrgb(name)[:3]
    return r, g, b


# -- crop and size -----------------------------------------------------------------------------


def _centre(keep: float, name: str) -> Crop:
    margin = (1 - keep) / 2
    return Crop((margin, margin, 1 - margin, 1 - margin), name)


def _crop_ratio(match: Match) -> Operation:
    return AspectCrop(int(match["w"]), int(match["h"]))


def _crop_keep(match: Match) -> Operation:
    keep = _number(match, 5, 100) or 100
    return _centre(keep / 100, f"{number(keep)}%")


def _crop_trim(match: Match) -> Operation:
    trim = _number(match, 0, 95) or 0
    return _centre(1 - trim / 100, f"{number(100 - trim)}%")


_HALVES = {
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "upper": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
    "lower": (0.0, 0.5, 1.0, 1.0),
}


def _crop_half(match: Match) -> Operation:
    return Crop(_HALVES[match["side"]], f"{match['side']}-half")


def _zoom(match: Match) -> Operation:
    times = _number(match, 1, 10) or 1.5
    return _centre(1 / times, f"zoom-{number(times)}x")


def _resize(match: Match) -> Operation:
    return Resize(*clamp_size(int(match["w"]), int(match["h"])))


def _scale_percent(match: Match) -> Operation:
    percent = _number(match, 1, 1600) or 100
    if match["by"] and match["verb"] in SHRINKING:
        percent = max(1, 100 - percent)
    elif match["by"] and match["verb"] in ("upscale", "enlarge"):
        percent += 100
    return Scale(percent / 100)


def _scale_times(match: Match) -> Operation:
    times = _number(match, 0.01, 16) or 1
    return Scale(1 / times if match["verb"] in SHRINKING else times)


def _rotate(match: Match) -> Operation:
    degrees = _number(match, 0, 360) or 90
    towards = match["dir"] or ""
    anticlockwise = any(word in towards for word in ("counter", "anti", "ccw", "left"))
    return Rotate(-degrees if anticlockwise else degrees)


def _flip(match: Match) -> Operation:
    axis = match["axis"] or ""
    return Flip(horizontal=not any(word in axis for word in ("vert", "upside", "top")))


# -- colour, tone and detail -------------------------------------------------------------------

_QUALITIES: dict[str, Quality] = {
    "brightness": "brightness",
    "exposure": "brightness",
    "contrast": "contrast",
    "saturation": "saturation",
    "vibrance": "saturation",
}
_RAISING = ("increase", "raise", "boost", "more", "higher", "high", "add", "up", "+")
_ADJECTIVES: dict[str, tuple[Quality, bool]] = {
    "brighter": ("brightness", True),
    "brighten": ("brightness", True),
    "lighter": ("brightness", True),
    "lighten": ("brightness", True),
    "darker": ("brightness", False),
    "darken": ("brightness", False),
    "dimmer": ("brightness", False),
    "punchier": ("contrast", True),
    "more vivid": ("saturation", True),
    "more vibrant": ("saturation", True),
    "more saturated": ("saturation", True),
    "saturate": ("saturation", True),
    "less vivid": ("saturation", False),
    "less saturated": ("saturation", False),
    "muted": ("saturation", False),
}


def _enhance(quality: Quality, raising: bool, match: Match) -> Operation:
    amount = (_number(match, 1, 300) or 30) / 100
    return Enhance(quality, 1 + amount if raising else max(0.0, 1 - amount))


def _enhance_named(match: Match) -> Operation:
    quality = _QUALITIES[match["what"].split()[-1]]
    return _enhance(quality, match["dir"] in _RAISING, match)


def _enhance_adjective(match: Match) -> Operation:
    quality, raising = _ADJECTIVES[" ".join(match["adj"].split())]
    return _enhance(quality, raising, match)


def _tint(match: Match) -> Operation:
    verb = match.groupdict().get("verb") or "tint"
    strength = 1.0 if verb.startswith(("recol", "col")) else 0.45
    return Tint(_rgb(match["c"]), match["c"], strength)


def _blur(match: Match) -> Operation:
    return Blur(_number(match, 0.1, 100))


def _sharpen(match: Match) -> Operation:
    return Sharpen(_number(match, 0.5, 50) or 2.0)


def _blur_background(match: Match) -> Operation:
    return BlurBackground(_number(match, 0.5, 100))


def _replace_background(match: Match) -> Operation:
    return ReplaceBackground(_rgb(match["c"]), match["c"])


def _always(operation: Operation) -> Callable[[Match], Operation]:
    return lambda _match: operation


_DETAIL = r"(?:\s+(?:by|to|radius|of|with(?:\s+a)?\s+radius(?:\s+of)?))?(?:\s*" + NUM
_DETAIL += r"\s*(?:px|pixels?)?)?"
_SOURCES: tuple[tuple[str, Callable[[Match], Operation]], ...] = (
    (
        rf"\bcrop\b{OBJ}\s+(?:to\s+|into\s+)?(?:an?\s+|the\s+)?{CENTRE}square\b",
        _always(AspectCrop(1, 1)),
    ),
    (r"\bsquare\s+crop\b|\bmake\s+it\s+square\b", _always(AspectCrop(1, 1))),
    (rf"\bcrop\b{OBJ}\s+(?:to\s+)?(?:an?\s+)?(?P<w>[1-9]\d*)\s*:\s*(?P<h>[1-9]\d*)", _crop_ratio),
    (rf"\bcrop\b{OBJ}\s+to\s+(?:the\s+)?{CENTRE}{PCT}", _crop_keep),
    (rf"\bcrop\b{OBJ}\s+(?:by\s+|off\s+)?{PCT}", _crop_trim),
    (
        rf"\b(?:crop|keep)\b{OBJ}\s+(?:to\s+)?(?:only\s+)?(?:the\s+)?"
        r"(?P<side>left|right|top|bottom|upper|lower)\s+half\b",
        _crop_half,
    ),
    (rf"\bzoom\s+in\b(?:\s+(?:by\s+)?{NUM}\s*x\b)?", _zoom),
    (
        rf"{RESIZE}\s+(?:to\s+)?(?P<w>\d+)\s*(?:x|\u00d7|by)\s*(?P<h>\d+)(?:\s*(?:px|pixels)\b)?",
        _resize,
    ),
    (rf"{RESIZE}\s+(?:(?P<by>by)\s+|to\s+)?{PCT}", _scale_percent),
    (rf"{RESIZE}\s+(?:by\s+)?{NUM}\s*(?:x|times)\b", _scale_times),
    (r"\b(?:half|halve)\s+(?:the\s+)?size\b", _always(Scale(0.5))),
    (r"\bdouble\s+(?:the\s+)?size\b", _always(Scale(2.0))),
    (
        rf"\brotated?\b{OBJ}(?:\s+(?:by\s+)?{NUM}\s*(?:degrees?\b|deg\b|°)?)?"
        r"(?:\s*(?P<dir>clockwise|counter\s*-?\s*clockwise|anti\s*-?\s*clockwise|ccw|cw"
        r"|(?:to\s+the\s+)?(?:left|right))\b)?",
        _rotate,
    ),
    (r"\b(?:turn\s+(?:it\s+)?)?upside\s*-?\s*down\b", _always(Rotate(180))),
    (
        rf"\b(?:flip(?:ped)?|mirror(?:ed)?)\b{OBJ}(?:\s+(?P<axis>horizontally|vertically"
        r"|upside\s*-?\s*down|left\s*(?:to|-)?\s*right|top\s*(?:to|-)?\s*bottom|sideways)\b)?",
        _flip,
    ),
    (
        r"\b(?:gr[ae]y\s*-?\s*scale|black\s*-?\s*(?:and|&|n)\s*-?\s*white|b\s*&\s*w|b/w"
        r"|monochrome|remove\s+(?:the\s+|all\s+)?colou?rs?|desaturated?)\b",
        _always(Grayscale()),
    ),
    (r"\bsepia(?:\s+tone[sd]?)?\b", _always(Sepia())),
    (
        r"\binvert(?:ed)?\b(?:\s+(?:the\s+)?colou?rs?\b)?|\b(?:photo\s+)?negative\b",
        _always(Invert()),
    ),
    (
        r"\b(?P<dir>increase|raise|boost|more|higher|high|add|up|decrease|lower|low|reduce|less"
        r"|cut|drop|down)\s+(?:the\s+)?(?P<what>brightness|exposure|contrast|saturation"
        rf"|vibrance|colou?r\s+saturation)\b(?:\s+by\s+{PCT})?",
        _enhance_named,
    ),
    (
        r"\b(?P<what>brightness|exposure|contrast|saturation|vibrance)\s*(?P<dir>up|down|\+|-)"
        rf"\s*(?:{PCT})?",
        _enhance_named,
    ),
    (
        r"\b(?P<adj>brighter|brighten|lighter|lighten|darker|darken|dimmer|punchier"
        r"|more\s+(?:vivid|vibrant|saturated)|less\s+(?:vivid|saturated)|saturate|muted)\b"
        rf"{OBJ}(?:\s+by\s+{PCT})?",
        _enhance_adjective,
    ),
    (
        r"\b(?:warm(?:er)?\s+(?:tones?|colou?rs?|tint|look)|warm\s+(?:it\s+)?up|warmer"
        r"|make\s+it\s+warm|more\s+warm(?:th)?|add\s+warmth)\b",
        _always(Temperature(0.12)),
    ),
    (
        r"\b(?:cool(?:er)?\s+(?:tones?|colou?rs?|tint|look)|cool\s+(?:it\s+)?down|cooler"
        r"|colder|make\s+it\s+(?:cool|cold))\b",
        _always(Temperature(-0.12)),
    ),
    (
        r"\b(?P<verb>tint|recolou?r|colou?ri[sz]e|colou?r|make|turn)\s+(?:it\s+|the\s+(?:image"
        rf"|photo|picture)\s+)?(?:to\s+|with\s+|in\s+)?(?:an?\s+)?{COLOUR}",
        _tint,
    ),
    (rf"\b{COLOUR}\s+(?:tint|tone|hue|cast|filter|wash)\b", _tint),
    (rf"\b(?:gaussian\s+)?blur(?:red|ry)?\b{OBJ}{_DETAIL}", _blur),
    (r"\b(?:soften|defocus)\b|\bout\s+of\s+focus\b", _blur),
    (rf"\b(?:sharpen|sharper|crisper)\b{OBJ}{_DETAIL}", _sharpen),
    (
        r"\b(?:remove|delete|erase|drop|strip)\s+(?:the\s+)?(?:background|bg|backdrop)\b"
        r"|\bcut\s*-?\s*(?:it\s+)?out\b|\b(?:transparent|no)\s+(?:background|bg)\b"
        r"|\bbackground\s+removal\b|\bmake\s+(?:the\s+)?background\s+transparent\b",
        _always(RemoveBackground()),
    ),
    (
        r"\b(?:replace|change|swap|set|turn|make|paint)\s+(?:the\s+)?(?:background|bg|backdrop)"
        rf"\s+(?:with\s+|to\s+|into\s+|for\s+)?(?:an?\s+)?(?:plain\s+|solid\s+)?{BACKDROP}",
        _replace_background,
    ),
    (rf"\b{BACKDROP}\s+(?:background|backdrop)\b", _replace_background),
    (
        rf"\bblur(?:red|ry)?\s+(?:the\s+)?(?:background|bg|backdrop)\b{_DETAIL}"
        r"|\bbackground\s+blur\b|\bbokeh\b|\bportrait\s+mode\b",
        _blur_background,
    ),
)
RULES = tuple(Rule(re.compile(source), build) for source, build in _SOURCES)
