"""Stable-Diffusion-2.1-class pipelines with random weights, built from ``bench/gpu_configs``.

Nothing is downloaded. The UNet, VAE and text encoder are built from SD 2.1's published
configs (``unet.json``, ``vae.json``, ``text_encoder.json``; ``scheduler.json`` is its DDIM)
and initialised at random: a forward pass costs what the real model's does, and the output is
noise. ``tiny.json`` shrinks the widths of the same architecture for the CPU. The tokenizer is
a byte-level CLIP tokenizer with no merges, as the tests build theirs: every prompt is padded
to 77 tokens anyway, so the text encoder's work is the real one.

Also here: reading a model's weights from disk, with the page cache dropped first, as the
yardstick of a model swap.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIGS",
    "PROMPT",
    "build_pipeline",
    "configs",
    "drop_cached",
    "filesystem",
    "load_pipeline",
    "paint",
    "read_seconds",
    "weight_files",
]

# The libraries' notes (a missing torchvision, a dtype cast, progress bars) are noise in a
# benchmark's output; their errors still show.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

CONFIGS = Path(__file__).resolve().parent / "gpu_configs"
PARTS = ("unet", "vae", "text_encoder")
TOKENS = 77  # CLIP's context: the pipelines pad every prompt to it
CHUNK = 16 * 1024**2
PROMPT = "a lighthouse on a cliff at dusk"


def configs(*, tiny: bool) -> dict[str, dict[str, Any]]:
    """Each part's config, shrunk by ``tiny.json`` when ``tiny``."""
    found = {name: _read(name) for name in (*PARTS, "scheduler")}
    if tiny:
        shrink = _read("tiny")
        for part in PARTS:
            found[part] = found[part] | shrink[part]
    return found


def _read(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONFIGS / f"{name}.json").read_text())
    return data


def build_pipeline(folder: Path, *, tiny: bool, device: str = "cpu", dtype: str = "float32") -> Any:
    """Builds the pipeline (on ``device``, in ``dtype``), saves it to ``folder`` the way a
    published checkpoint is laid out (safetensors), and returns it."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    parts = configs(tiny=tiny)
    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    with torch.device(device):  # initialised where it will run: seconds, not minutes, on a GPU
        unet, vae, text = _modules(parts, tokenizer)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler.from_config(parts["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe = pipe.to(device, getattr(torch, dtype))
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(folder)
    return pipe


def load_pipeline(folder: Path) -> Any:
    """The folder as ``StableDiffusionPipeline`` reads it, offline, in float32 on the CPU."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging

    logging.disable_progress_bar()
    pipe = StableDiffusionPipeline.from_pretrained(
        str(folder), dtype=torch.float32, local_files_only=True
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _modules(parts: dict[str, dict[str, Any]], tokenizer: Any) -> tuple[Any, Any, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel.from_config(parts["unet"])
    vae = AutoencoderKL.from_config(parts["vae"])
    text = {k: v for k, v in parts["text_encoder"].items() if k != "architectures"}
    ends = {
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    }
    return unet, vae, CLIPTextModel(CLIPTextConfig(**(text | ends)))


def byte_tokenizer() -> Any:
    """A CLIP BPE tokenizer over the 256 byte symbols with no merges: every byte is a token."""
    from transformers import CLIPTokenizer

    symbols = list(_bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    with tempfile.TemporaryDirectory() as scratch:  # read once, at construction
        vocab_file, merges_file = Path(scratch, "vocab.json"), Path(scratch, "merges.txt")
        vocab_file.write_text(json.dumps(vocab))
        merges_file.write_text("#version: 0.2\n")
        return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=TOKENS)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-ins for the 256 byte values (byte-level BPE's alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    codes = printable + [256 + i for i in range(len(others))]
    return dict(zip(printable + others, map(chr, codes), strict=True))


def paint(pipe: Any, *, size: int, steps: int, guidance: float, seed: int) -> float:
    """What ``diffusers-image`` does for one image, timed in seconds: the pipeline's call on
    its device, with a generator seeded there, then the PNG encode (PIL's default level, as
    the engine's at these sizes)."""
    import io

    import torch

    start = time.perf_counter()
    image = pipe(
        PROMPT,
        width=size,
        height=size,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=torch.Generator(pipe.device).manual_seed(seed),
        output_type="pil",
    ).images[0]
    image.save(io.BytesIO(), "PNG")
    return time.perf_counter() - start


# -- the disk -----------------------------------------------------------------------------------


def weight_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.safetensors"))


def drop_cached(folder: Path) -> None:
    """Asks the kernel to drop the folder's weights from the page cache (no root needed for
    clean pages), so that the next read comes from the disk."""
    for path in weight_files(folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def filesystem(path: Path) -> str:
    """The type of the file system that holds ``path`` (tmpfs has no disk to read from)."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    found = [(m, kind) for m, kind in mounts if path.resolve().is_relative_to(m)]
    return max(found, key=lambda f: len(f[0]))[1] if found else "unknown"


def read_seconds(folder: Path) -> tuple[float, int]:
    """Seconds to read every weight file of ``folder`` from the disk, and the bytes read."""
    drop_cached(folder)
    total, start = 0, time.perf_counter()
    for path in weight_files(folder):
        with path.open("rb", buffering=0) as file:
            while chunk := file.read(CHUNK):
                total += len(chunk)
    return time.perf_counter() - start, total
