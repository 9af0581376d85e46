#!/usr/bin/env python
"""Time one typical request to each built-in video and 3D engine, called in process.

    .venv/bin/python bench/engines_video_mesh.py [--repeats 3] [--cores 0,1] [--json PATH]

The requests: 5 s of 720p image-to-video (16:9) from a landscape (the preview renderer's
still: one layer moves) and from a figure on a backdrop (two-layer parallax), a multiview
GLB (front, back and left views of a vase), a single-image GLB (meshy6-image-to-3d's default
30,000-face budget) and a text GLB ("a house", 30,000 faces). Each runs once to warm imports
and caches, then ``--repeats`` times; the table shows the median wall time and the CPU time of
the process (all its threads) over the same calls. CPU time is the steadier figure on a busy
machine: wall time grows with other work, CPU time does not. ``--cores`` pins the process to
those cores first, to measure "2 cores" on a bigger machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from hyperlocal.engines.base import (
    Category,
    Engine,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.builtin.image.preview import render
from hyperlocal.settings import Settings

console = Console(width=132)  # the table is wider than a default 80-column pipe


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    engine: str
    request: GenerationRequest


@dataclass(frozen=True, slots=True)
class Timing:
    case: str
    wall_s: float  # median
    cpu_s: float  # median
    output_kb: float
    detail: str


def png(image: Image.Image) -> MediaInput:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return MediaInput("image", MediaKind.IMAGE, "image/png", buffer.getvalue(), "data:")


def still() -> MediaInput:
    """A real-looking picture to animate: the preview renderer's landscape at 1600x900."""
    request = GenerationRequest(
        "bench",
        "bench",
        Category.IMAGE,
        {"prompt": "a lighthouse on a cliff at dusk", "aspect_ratio": "16:9", "resolution": "2k"},
    )
    image = Image.open(io.BytesIO(render(request).data)).convert("RGB")
    return png(image.resize((1600, 900)))


def portrait() -> MediaInput:
    """A figure on a studio backdrop with some texture, 1600x900: what parallax can separate."""
    image = Image.new("RGB", (1600, 900), (188, 196, 210))
    draw = ImageDraw.Draw(image)
    for y in range(0, 900, 6):  # a soft vertical gradient with fine lines, for the encoder
        draw.line((0, y, 1600, y), fill=(180 - y // 20, 190 - y // 24, 206 - y // 30), width=3)
    draw.ellipse((700, 160, 900, 400), fill=(224, 180, 150))
    draw.rounded_rectangle((580, 390, 1020, 900), 90, fill=(70, 40, 110))
    return png(image)


def vase(width_scale: float, colour: tuple[int, int, int]) -> MediaInput:
    """A vase's outline on white: round shoulders, a waist, a foot."""
    image = Image.new("RGB", (1024, 1024), (255, 255, 255))
    profile = [
        (0, 120),
        (60, 200),
        (200, 330),
        (360, 250),
        (520, 150),
        (660, 210),
        (820, 260),
        (900, 160),
    ]
    right = [(512 + w * width_scale, 62 + y) for y, w in profile]
    left = [(1024 - x, y) for x, y in reversed(right)]
    ImageDraw.Draw(image).polygon(right + left, fill=colour)
    return png(image)


def figure() -> MediaInput:
    image = Image.new("RGB", (1024, 768), (236, 238, 242))
    draw = ImageDraw.Draw(image)
    draw.ellipse((412, 80, 612, 280), fill=(220, 170, 130))
    draw.rounded_rectangle((362, 270, 662, 640), 80, fill=(40, 90, 180))
    draw.ellipse((452, 150, 482, 180), fill=(30, 30, 30))
    draw.ellipse((542, 150, 572, 180), fill=(30, 30, 30))
    return png(image)


def cases() -> list[Case]:
    views = {
        "front_image_url": [vase(1.0, (200, 80, 60))],
        "back_image_url": [vase(1.0, (180, 70, 50))],
        "left_image_url": [vase(0.8, (190, 90, 70))],
    }
    return [
        Case("i2v 5 s 720p, landscape", "motion-video", GenerationRequest(
            "bench", "sora-2-i2v", Category.VIDEO,
            {"prompt": "slow push in on the lighthouse", "duration": 5, "aspect_ratio": "16:9"},
            {"image": [still()]})),
        Case("i2v 5 s 720p, subject", "motion-video", GenerationRequest(
            "bench", "sora-2-i2v", Category.VIDEO,
            {"prompt": "she turns to the camera", "duration": 5, "aspect_ratio": "16:9"},
            {"image": [portrait()]})),
        Case("multiview GLB (tripo3d-multiview)", "visual-hull-3d", GenerationRequest(
            "bench", "tripo3d-multiview-to-3d", Category.THREE_D, {}, views)),
        Case("single-image GLB (meshy6-image)", "inflate-3d", GenerationRequest(
            "bench", "meshy6-image-to-3d", Category.THREE_D, {"target_polycount": 30000},
            {"image": [figure()]})),
        Case("text GLB (meshy6-text, 30k faces)", "primitive-3d", GenerationRequest(
            "bench", "meshy6-text-to-3d", Category.THREE_D,
            {"prompt": "a cosy house", "target_polycount": 30000, "enable_pbr": True})),
    ]  # fmt: skip


def load_engine(name: str) -> Engine:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="hyperlocal.engines") if e.name == name]
    factory: Callable[[EngineContext], Engine] = entry.load()
    return factory(EngineContext(settings=Settings()))


async def no_progress(_fraction: float, _message: str | None) -> None:
    return None


async def measure(case: Case, repeats: int) -> Timing:
    engine = load_engine(case.engine)
    result = await engine.generate(case.request, no_progress)  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = await engine.generate(case.request, no_progress)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    size = len(result.artifacts[0].data) / 1024
    return Timing(
        case.name, statistics.median(walls), statistics.median(cpus), size, detail(result)
    )


def detail(result: GenerationResult) -> str:
    extra = result.extra
    if result.duration is not None:
        size = f"{extra['width']:.0f}x{extra['height']:.0f}"
        return f"{size}, {result.duration:.1f} s, {extra['camera']}, {extra['depth']}"
    return f"{extra['faces']:.0f} faces"


def table(timings: Sequence[Timing], note: str) -> Table:
    out = Table(title="built-in video and 3D engines", caption=note)
    for column in ("request", "wall s (median)", "CPU s (median)", "output KiB", "what came out"):
        out.add_column(
            column, justify="left" if column in ("request", "what came out") else "right"
        )
    for t in timings:
        out.add_row(t.case, f"{t.wall_s:.2f}", f"{t.cpu_s:.2f}", f"{t.output_kb:,.0f}", t.detail)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", help="pin to these CPU cores first, e.g. 0,1")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    timings = [asyncio.run(measure(case, args.repeats)) for case in cases()]
    note = (
        f"{cores} cores, load average {load:.1f} at the start; {args.repeats} runs after a warm-up"
    )
    console.print(table(timings, note))
    if args.json:
        args.json.write_text(
            json.dumps({"note": note, "timings": [asdict(t) for t in timings]}, indent=2)
        )


if __name__ == "__main__":
    main()
