"""The ``musicgen`` engine: text-to-music with a local MusicGen through transformers.

The folder is a ``MusicgenForConditionalGeneration`` checkpoint with its tokenizer (as
``facebook/musicgen-small`` is published). The decoder writes ``frame_rate`` audio tokens a
second in each of its codebooks, delayed one step per codebook, so ``duration`` seconds need
``duration * frame_rate + codebooks - 1`` generation steps; EnCodec turns them into samples.
Engine options: ``weights`` (required), ``guidance`` (3.0, classifier-free guidance),
``max_seconds`` (30: MusicGen was trained on 30 s clips), ``device`` and ``dtype``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hyperlocal.engines.base import (
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    ProgressCallback,
)
from hyperlocal.engines.local import diffusion
from hyperlocal.engines.local.options import number, seed_for, text
from hyperlocal.engines.local.runtime import Resident, Weights, locate, require
from hyperlocal.engines.media.audio_codec import FORMATS, Audio, encode
from hyperlocal.engines.media.progress import Report, run_reporting
from hyperlocal.errors import GenerationError

__all__ = ["MusicJob", "MusicgenEngine", "create"]

ENGINE = "musicgen"
LAYOUT = "a transformers MusicGen (config.json, weights, tokenizer files)"


@dataclass(frozen=True, slots=True)
class MusicJob:
    prompt: str
    seconds: float
    guidance: float
    seed: int
    fmt: str


@dataclass(frozen=True, slots=True)
class Musicgen:
    model: Any
    tokenizer: Any


def create(context: EngineContext) -> MusicgenEngine:
    """The registry factory for ``musicgen``."""
    return MusicgenEngine(context)


class MusicgenEngine:
    """Composes ``duration`` seconds from ``prompt``; one job at a time on the loaded model."""

    def __init__(self, context: EngineContext, *, concurrency: int = 1) -> None:
        self._settings = context.settings
        self._models = Resident(ENGINE, _load, context, concurrency)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        folder = locate(self._settings, request.options, ENGINE, LAYOUT)
        job = prepare(request)
        await progress(0.0, "preparing")

        def work(report: Report) -> tuple[Audio, Weights]:
            return self._models.run(
                _weights(folder, request.options),
                lambda m, w: (_compose(m, job, w, report), w),
                report,
            )

        audio, weights = await run_reporting(work, progress)
        await progress(1.0, "music generated")
        return GenerationResult(
            artifacts=[encode(audio, job.fmt)],
            duration=audio.duration,
            extra={"engine": ENGINE, "weights": weights.folder.name, "seed": float(job.seed)},
        )

    async def preload(self, options: Mapping[str, InputValue]) -> str:
        folder = locate(self._settings, options, ENGINE, LAYOUT)
        return await self._models.apreload(lambda: _weights(folder, options))

    async def aclose(self) -> None:
        await asyncio.to_thread(self._models.clear)  # may wait for a load in progress


def prepare(request: GenerationRequest) -> MusicJob:
    params, options = request.params, request.options
    fmt = text(params, "format") or text(params, "output_format", "wav")
    if fmt not in FORMATS:
        raise GenerationError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    seconds = min(number(params, "duration", 10.0), number(options, "max_seconds", 30.0))
    if seconds <= 0:
        raise GenerationError(f"duration must be a positive number of seconds, not {seconds}")
    return MusicJob(
        prompt=text(params, "prompt"),
        seconds=seconds,
        guidance=number(options, "guidance", 3.0),
        seed=seed_for(request),
        fmt=fmt,
    )


def _weights(folder: Path, options: Mapping[str, InputValue]) -> Weights:
    require(ENGINE, "torch", "transformers")
    return diffusion.torch_weights(folder, options)


def _load(weights: Weights) -> Musicgen:
    import torch
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    folder = str(weights.folder)
    try:
        model: Any = MusicgenForConditionalGeneration.from_pretrained(  # its .to() is mistyped
            folder, dtype=getattr(torch, weights.dtype), local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, safetensors errors...
        raise GenerationError(f"{weights.folder.name}: not a loadable MusicGen ({exc})") from exc
    return Musicgen(model.to(weights.device).eval(), tokenizer)


def _compose(loaded: Musicgen, job: MusicJob, weights: Weights, report: Report) -> Audio:
    import torch
    from transformers import StoppingCriteriaList

    config = loaded.model.config
    rate, frame_rate = config.audio_encoder.sampling_rate, config.audio_encoder.frame_rate
    steps = math.ceil(job.seconds * frame_rate) + config.decoder.num_codebooks - 1
    inputs = loaded.tokenizer([job.prompt], padding=True, return_tensors="pt").to(weights.device)
    torch.manual_seed(job.seed)  # generate() samples from torch's global generator
    values = loaded.model.generate(
        **inputs,
        do_sample=True,
        guidance_scale=job.guidance,
        max_new_tokens=steps,
        stopping_criteria=StoppingCriteriaList([_StepProgress(steps, report)]),
    )
    channels = values[0].float().cpu().numpy()  # (channels, samples)
    samples = channels[0] if channels.shape[0] == 1 else channels.T
    return Audio(np.ascontiguousarray(samples[: round(job.seconds * rate)], np.float32), rate)


class _StepProgress:
    """A stopping criterion that never stops: ``generate`` calls it once per decoding step, so it
    moves the progress bar, and it raises there once the job is cancelled, which ends the loop.

    Not a streamer: MusicGen's ``generate`` in transformers 5 hands a streamer the prompt only,
    never a step, so a cancelled job would decode to the end."""

    def __init__(self, steps: int, report: Report) -> None:
        self._steps = steps
        self._report = report
        self._seen = 0

    def __call__(self, input_ids: Any, _scores: Any, **_kwargs: Any) -> Any:
        self._seen += 1
        share = min(self._seen / self._steps, 1.0)
        self._report(0.05 + 0.9 * share, f"step {self._seen}/{self._steps}")
        return input_ids.new_zeros(input_ids.shape[0]).bool()  # no sequence is done
