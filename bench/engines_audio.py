#!/usr/bin/env python
"""Benchmark the built-in CPU audio engines: speed against the length of the audio.

Each case drives an engine through its public ``generate`` with a real request, as the worker
does, after one warm-up call that loads the engine's model (its time is reported as "first call"):

- TTS: a typical 70-word paragraph, with two emotion tags, to MP3;
- clone: two sentences matched to a 3 s reference voice (Piper, pitched up), to MP3;
- ASR: about 20 s of Piper speech, with word timings;
- music: 30 s from a prompt, to MP3.

Wall time is affected by whatever else the machine runs, so the table also gives the process's
CPU time (all threads). RTF is time / seconds of audio: below 1 is faster than real time.

    .venv/bin/python bench/engines_audio.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hyperlocal.engines.base import (
    Category,
    Engine,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.builtin.audio import asr, clone, music, tts
from hyperlocal.engines.builtin.audio.speech import repitch
from hyperlocal.engines.media.audio_codec import Audio, decode, encode
from hyperlocal.settings import Settings

PARAGRAPH = (
    "(calm) Every morning the harbour wakes slowly. Fishing boats slip out past the lighthouse "
    "while the cafes along the quay put out their chairs. (excited) By nine the market is "
    "full: crates of mussels, bright peppers, warm bread and the smell of coffee drifting over "
    "the water. Visitors wander between the stalls, and the gulls wait patiently for anything "
    "that falls."
)
ASR_TEXT = (
    "The committee met on Tuesday to discuss the new library. Most members agreed that the "
    "old building could be repaired, but the roof would need to be replaced first. The "
    "architect promised a detailed plan within a month, and the mayor asked for an estimate "
    "of the total cost before the summer holidays. Several residents spoke in favour of a "
    "reading garden, and the meeting ended shortly after eight."
)
CLONE_TEXT = "Thank you for calling. Your order has shipped and should arrive on Thursday."
MUSIC_PROMPT = "upbeat synthwave with a driving beat"


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    audio_s: float
    first_s: float  # the warm-up call: model loading and first-use caches, plus the work
    wall_s: float  # median over repeats
    cpu_s: float

    @property
    def rtf_wall(self) -> float:
        return self.wall_s / self.audio_s

    @property
    def rtf_cpu(self) -> float:
        return self.cpu_s / self.audio_s


async def _ignore(_fraction: float, _message: str | None) -> None:
    return None


def _request(
    model: str, params: dict[str, InputValue], audio: bytes | None = None
) -> GenerationRequest:
    media = (
        {"audio": [MediaInput("audio", MediaKind.AUDIO, "audio/wav", audio, "data:")]}
        if audio
        else {}
    )
    return GenerationRequest("bench", model, Category.AUDIO, params, media)


async def measure(name: str, engine: Engine, request: GenerationRequest, repeats: int) -> Case:
    """Median wall and CPU time of ``repeats`` runs, after a warm-up run that loads the model."""
    started = time.perf_counter()
    result = await engine.generate(request, _ignore)  # warm-up: loads the model
    first = time.perf_counter() - started
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = await engine.generate(request, _ignore)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall_s, cpu_s = statistics.median(walls), statistics.median(cpus)
    return Case(name, _duration(result), first, wall_s, cpu_s)


def _duration(result: GenerationResult) -> float:
    assert result.duration is not None
    return result.duration


async def _speech_wav(engine: Engine, text: str) -> bytes:
    result = await engine.generate(_request("audio-tts", {"text": text, "format": "wav"}), _ignore)
    return result.artifacts[0].data


async def run(repeats: int) -> list[Case]:
    """Each engine's first call is its warm-up, so inputs for later cases are made in between."""
    context = EngineContext(settings=Settings())
    speech, voice, hearing, composer = (m.create(context) for m in (tts, clone, asr, music))
    tts_request = _request("audio-tts", {"text": PARAGRAPH, "format": "mp3"})
    cases = [await measure("TTS paragraph (Piper, 2 tags) -> mp3", speech, tts_request, repeats)]
    reference = decode(await _speech_wav(speech, "Hello, this is my voice. I speak quite high."))
    higher = encode(Audio(repitch(reference.samples, 1.3), reference.rate), "wav").data
    clone_request = _request("audio-clone", {"text": CLONE_TEXT, "format": "mp3"}, higher)
    cases.append(await measure("clone (Piper + WORLD) -> mp3", voice, clone_request, repeats))
    asr_request = _request("audio-asr", {"language": "en"}, await _speech_wav(speech, ASR_TEXT))
    cases.append(await measure("ASR (Whisper tiny.en, words)", hearing, asr_request, repeats))
    music_request = _request("lyria-3-pro", {"prompt": MUSIC_PROMPT, "duration": 30})
    cases.append(await measure("music 30 s -> mp3", composer, music_request, repeats))
    return cases


def table(cases: list[Case], caption: str) -> Table:
    out = Table(title="hyperlocal audio engines (CPU)", caption=caption)
    for column in ("case", "audio s", "first call s", "wall s", "CPU s", "RTF wall", "RTF CPU"):
        out.add_column(column, justify="left" if column == "case" else "right")
    for c in cases:
        out.add_row(
            c.name,
            f"{c.audio_s:.1f}",
            f"{c.first_s:.2f}",
            f"{c.wall_s:.2f}",
            f"{c.cpu_s:.2f}",
            f"{c.rtf_wall:.3f}",
            f"{c.rtf_cpu:.3f}",
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (median)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    cases = asyncio.run(run(args.repeats))
    after = os.getloadavg()[0]
    cores = len(os.sched_getaffinity(0))
    caption = (
        f"{cores} cores, Python {platform.python_version()}, median of {args.repeats}; "
        f"1-min load average {before:.1f} before, {after:.1f} after"
    )
    Console(width=110).print(table(cases, caption))
    if args.json:
        rows = [asdict(c) | {"rtf_wall": c.rtf_wall, "rtf_cpu": c.rtf_cpu} for c in cases]
        args.json.write_text(json.dumps({"caption": caption, "cases": rows}, indent=2))


if __name__ == "__main__":
    main()
