"""The diffusers plumbing that the image and video adapters share.

Pipelines of different families take different arguments (SVD has no prompt, LTX calls its
frame rate ``frame_rate``, img2img takes no size), so adapters build one set of keyword
arguments and :func:`call_supported` passes each pipeline the ones its ``__call__`` names.

Steps are seen through diffusers' ``callback_on_step_end`` (:func:`on_each_step`), and can be
previewed without the VAE: :func:`latent_preview` projects the latents to RGB with a fixed
linear map per latent family, as ComfyUI's "latent2rgb" previewer does (its published factors;
no extra weights, well under a millisecond for a 64 px picture).
"""

from __future__ import annotations

import base64
import inspect
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperlocal.engines.base import InputValue, StepMessage
from hyperlocal.engines.local.options import text
from hyperlocal.engines.local.runtime import Weights
from hyperlocal.engines.media.progress import Report
from hyperlocal.errors import GenerationError

__all__ = [
    "DTYPES",
    "PREVIEW_SIDE",
    "SD",
    "SDXL",
    "Palette",
    "Step",
    "StepCallback",
    "accepts",
    "call_supported",
    "generator",
    "latent_preview",
    "load_pipeline",
    "on_each_step",
    "palette_for",
    "step_callback",
    "torch_weights",
]

DTYPES = ("float16", "bfloat16", "float32")
StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]
PREVIEW_SIDE = 64  # the long side of a preview, in pixels


@dataclass(frozen=True, slots=True)
class Step:
    """One denoising step done: where it puts the job's progress bar, which step of how many
    (from 1), and the pipeline's latents after it (batch first)."""

    fraction: float
    step: int
    steps: int
    latents: Any


@dataclass(frozen=True, slots=True)
class Palette:
    """A latent family's linear map to RGB in [-1, 1]: one (R, G, B) row per latent channel."""

    factors: tuple[tuple[float, float, float], ...]
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)


# ComfyUI's comfy/latent_formats.py: SD15 (also right for SD 2.x) and SDXL.
SD = Palette(
    (
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    )
)
SDXL = Palette(
    (
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
    (0.1084, -0.0175, -0.0011),
)
SDXL_SCALING = 0.13025  # the SDXL VAE's scaling factor; SD 1.x and 2.x use 0.18215


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


def on_each_step(see: Callable[[Step], None], start: float, end: float, steps: int) -> StepCallback:
    """A ``callback_on_step_end`` that shows ``see`` each denoising step, placed between
    ``start`` and ``end`` of the progress bar. ``see`` may raise to stop the pipeline there,
    in its thread (a cancelled job)."""

    def on_step_end(
        pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        total = max(int(getattr(pipe, "num_timesteps", 0) or steps), step + 1)
        fraction = start + (end - start) * (step + 1) / total
        see(Step(fraction, step + 1, total, tensors.get("latents")))
        return tensors

    return on_step_end


def step_callback(report: Report, start: float, end: float, steps: int) -> StepCallback:
    """:func:`on_each_step` that reports each step to one job, as a ``StepMessage``. The report
    raises in the pipeline's thread once the job is cancelled, which stops the denoising loop
    there."""

    def see(step: Step) -> None:
        report(step.fraction, StepMessage(step.step, step.steps))

    return on_each_step(see, start, end, steps)


def palette_for(pipe: Any, latents: Any) -> Palette | None:
    """The projection for ``pipe``'s latents: by their channel count (4: the SD families; the
    VAE's scaling factor tells SDXL's apart), or None where none is known (FLUX packs its
    latents into tokens)."""
    if getattr(latents, "ndim", 0) != 4 or latents.shape[1] != len(SD.factors):
        return None
    config = getattr(getattr(pipe, "vae", None), "config", None)
    scaling = getattr(config, "scaling_factor", None)
    return SDXL if scaling is not None and abs(scaling - SDXL_SCALING) < 1e-3 else SD


def latent_preview(latent: Any, palette: Palette) -> str:
    """A ``data:image/jpeg;base64,...`` of one latent (channels, height, width), projected to
    RGB by ``palette`` and at most ``PREVIEW_SIDE`` pixels on its long side."""
    import torch
    from PIL import Image

    factors = torch.tensor(palette.factors, dtype=torch.float32)
    bias = torch.tensor(palette.bias, dtype=torch.float32)
    rgb = latent.detach().to("cpu", torch.float32).permute(1, 2, 0) @ factors + bias
    pixels = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels)  # height x width x 3 bytes: RGB
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def call_supported(pipe: Any, arguments: Mapping[str, object]) -> Any:
    """Calls ``pipe`` with those of ``arguments`` that are not None and that it names."""
    accepted = inspect.signature(pipe.__call__).parameters
    return pipe(**{k: v for k, v in arguments.items() if v is not None and k in accepted})


def accepts(pipe: Any, name: str) -> bool:
    return name in inspect.signature(pipe.__call__).parameters
