"""The diffusers plumbing that the image and video adapters share.

Pipelines of different families take different arguments (SVD has no prompt, LTX calls its
frame rate ``frame_rate``, img2img takes no size), so adapters build one set of keyword
arguments and :func:`call_supported` passes each pipeline the ones its ``__call__`` names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hyperlocal.engines.base import InputValue
from hyperlocal.engines.local.options import text
from hyperlocal.engines.local.runtime import Weights
from hyperlocal.engines.media.progress import Report
from hyperlocal.errors import GenerationError

__all__ = [
    "DTYPES",
    "StepCallback",
    "accepts",
    "call_supported",
    "generator",
    "load_pipeline",
    "step_callback",
    "torch_weights",
]

DTYPES = ("float16", "bfloat16", "float32")
StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


def torch_weights(folder: Path, options: Mapping[str, InputValue]) -> Weights:
    """CUDA in half precision when torch sees a GPU, else the CPU in float32 (CPUs run half
    precision slowly or not at all). ``device`` and ``dtype`` options override either."""
    import torch

    cuda = torch.cuda.is_available()
    device = text(options, "device", "cuda" if cuda else "cpu")
    dtype = text(options, "dtype", "float16" if device.startswith("cuda") else "float32")
    if dtype not in DTYPES:
        raise GenerationError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    return Weights(folder, device, dtype)


def load_pipeline(loader: Callable[..., Any], weights: Weights) -> Any:
    """``loader.from_pretrained`` on the folder, offline, moved to the device."""
    import torch

    try:
        pipe = loader(
            str(weights.folder), dtype=getattr(torch, weights.dtype), local_files_only=True
        )
    except Exception as exc:  # diffusers raises OSError, ValueError, safetensors errors...
        raise GenerationError(
            f"{weights.folder.name}: not a loadable diffusers pipeline ({exc})"
        ) from exc
    pipe.set_progress_bar_config(disable=True)  # progress goes to the job instead
    return pipe.to(weights.device)


def generator(weights: Weights, seed: int) -> Any:
    import torch

    return torch.Generator(device=weights.device).manual_seed(seed)


def step_callback(report: Report, start: float, end: float, steps: int) -> StepCallback:
    """A ``callback_on_step_end`` that reports each denoising step between ``start`` and
    ``end`` of the progress bar. It raises in the pipeline's thread once the job is cancelled,
    which stops the denoising loop there."""

    def on_step_end(
        pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        total = max(int(getattr(pipe, "num_timesteps", 0) or steps), step + 1)
        report(start + (end - start) * (step + 1) / total, f"step {step + 1}/{total}")
        return tensors

    return on_step_end


def call_supported(pipe: Any, arguments: Mapping[str, object]) -> Any:
    """Calls ``pipe`` with those of ``arguments`` that are not None and that it names."""
    accepted = inspect.signature(pipe.__call__).parameters
    return pipe(**{k: v for k, v in arguments.items() if v is not None and k in accepted})


def accepts(pipe: Any, name: str) -> bool:
    return name in inspect.signature(pipe.__call__).parameters
