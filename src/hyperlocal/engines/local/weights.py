"""Local model weights: where they live, what is installed, and pulling them from the Hub.

Each model lives in its own folder, ``HYPERLOCAL_MODELS_DIR/<name>``, laid out as its
Hugging Face repository is (``model_index.json`` for a diffusers pipeline, ``config.json`` and
weights for transformers, ``model.bin`` for a CTranslate2 Whisper). The local adapters in
this package read a catalogue entry's ``engine_options.weights`` as that name;
``hyperlocal models pull`` and ``hyperlocal models list`` (``cli.models``) call this module.

Pulling needs the network and ``huggingface_hub`` (the ``gpu`` extra); nothing else here does,
and ``huggingface_hub`` is imported only when a pull starts.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from hyperlocal.errors import GenerationError, HyperlocalError
from hyperlocal.settings import Settings

__all__ = [
    "ENV_MODELS_DIR",
    "KNOWN",
    "InstalledModel",
    "KnownWeights",
    "WeightsKind",
    "check_name",
    "detect_kind",
    "installed",
    "loaded_bytes",
    "models_dir",
    "pull",
    "pull_named",
]

ENV_MODELS_DIR = "HYPERLOCAL_MODELS_DIR"
POLL_S = 0.5  # how often the progress bar re-measures the folder being downloaded into
# A folder name, never a path: ``weights = "../../etc"`` must not reach outside the models dir.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class WeightsKind(StrEnum):
    DIFFUSERS = "diffusers"
    TRANSFORMERS = "transformers"
    WHISPER = "whisper"  # CTranslate2, as faster-whisper loads it
    GGUF = "gguf"
    HUNYUAN3D = "hunyuan3d"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class InstalledModel:
    name: str
    path: Path
    size: int  # bytes on disk, every file under the folder
    kind: WeightsKind


@dataclass(frozen=True, slots=True)
class KnownWeights:
    """A name that ``hyperlocal models pull NAME`` can fetch without being told the repository.

    The repository ids are the public ones these models were published under; a pull needs
    the network (and, for gated repositories, ``HF_TOKEN``)."""

    repo_id: str
    engine: str
    allow_patterns: tuple[str, ...] = ()


KNOWN: Mapping[str, KnownWeights] = {
    "sd-turbo": KnownWeights("stabilityai/sd-turbo", "diffusers-image"),
    "sdxl-turbo": KnownWeights("stabilityai/sdxl-turbo", "diffusers-image"),
    "flux-schnell": KnownWeights("black-forest-labs/FLUX.1-schnell", "diffusers-image"),
    "wan2.1-t2v-1.3b": KnownWeights("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "diffusers-video"),
    "ltx-video": KnownWeights("Lightricks/LTX-Video", "diffusers-video"),
    "cogvideox-2b": KnownWeights("THUDM/CogVideoX-2b", "diffusers-video"),
    "whisper-small": KnownWeights("Systran/faster-whisper-small", "whisper-local"),
    "whisper-large-v3": KnownWeights("Systran/faster-whisper-large-v3", "whisper-local"),
    "musicgen-small": KnownWeights("facebook/musicgen-small", "musicgen"),
    "hunyuan3d-2": KnownWeights(
        "tencent/Hunyuan3D-2", "image-to-3d", allow_patterns=("hunyuan3d-dit-v2-0/*",)
    ),
}


def models_dir(settings: Settings) -> Path:
    """``settings.models_dir``, else ``$HYPERLOCAL_MODELS_DIR``, else ``<data_dir>/models``."""
    configured = settings.models_dir
    if configured is None and (env := os.environ.get(ENV_MODELS_DIR)):
        configured = Path(env)
    return (configured or settings.data_dir / "models").expanduser().resolve()


def check_name(name: str) -> str:
    """``name`` if it is a plain folder name; GenerationError otherwise."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise GenerationError(
            f"weights name {name!r} must be one folder name: letters, digits, '.', '_' or '-'"
        )
    return name


def installed(directory: Path) -> list[InstalledModel]:
    """Every model folder in ``directory``, by name; empty when the directory does not exist."""
    if not directory.is_dir():
        return []
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [InstalledModel(p.name, p, _size(p), detect_kind(p)) for p in folders]


def detect_kind(folder: Path) -> WeightsKind:
    """What loads this folder, judged from the files that each format always has."""
    if (folder / "model_index.json").is_file():
        return WeightsKind.DIFFUSERS
    if (folder / "model.bin").is_file() and (folder / "config.json").is_file():
        return WeightsKind.WHISPER  # transformers never names its weights plain model.bin
    if (folder / "config.json").is_file():
        return WeightsKind.TRANSFORMERS
    if any(folder.glob("*.gguf")):
        return WeightsKind.GGUF
    if any(folder.glob("*/config.yaml")):
        return WeightsKind.HUNYUAN3D
    return WeightsKind.UNKNOWN


def pull(
    name: str,
    repo_id: str,
    *,
    models_dir: Path,
    revision: str | None = None,
    allow_patterns: Sequence[str] | None = None,
    console: Console | None = None,
) -> InstalledModel:
    """Downloads ``repo_id`` into ``models_dir/name`` with a progress bar; resumes if cut off.

    Raises HyperlocalError, with the hub's reason, when the download fails (no network, an
    unknown or gated repository, a full disk)."""
    import huggingface_hub

    folder = models_dir / check_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    total = _repo_bytes(repo_id, revision)
    with _folder_progress(folder, f"{name} ← {repo_id}", total, console), _quiet_hub():
        try:
            huggingface_hub.snapshot_download(
                repo_id,
                local_dir=folder,
                revision=revision,
                allow_patterns=list(allow_patterns) if allow_patterns else None,
            )
        except Exception as exc:  # the hub's HTTP, auth and disk errors all end the same way
            raise HyperlocalError(f"could not pull {repo_id} into {folder}: {exc}") from exc
    return InstalledModel(name, folder, _size(folder), detect_kind(folder))


def pull_named(
    name: str,
    repo_id: str | None = None,
    *,
    models_dir: Path,
    revision: str | None = None,
    console: Console | None = None,
) -> InstalledModel:
    """``pull`` for the CLI: without ``repo_id``, ``name`` must be one of :data:`KNOWN`."""
    if repo_id is not None:
        return pull(name, repo_id, models_dir=models_dir, revision=revision, console=console)
    known = KNOWN.get(name)
    if known is None:
        raise HyperlocalError(f"{name!r} is not a known name ({', '.join(KNOWN)}): give a repo id")
    return pull(
        name,
        known.repo_id,
        models_dir=models_dir,
        revision=revision,
        allow_patterns=known.allow_patterns or None,
        console=console,
    )


def _repo_bytes(repo_id: str, revision: str | None) -> int | None:
    """The repository's total size, for the bar's end; None (an open-ended bar) if unknown."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except Exception:  # any failure here only costs the bar its end point
        return None
    sizes = [s.size for s in info.siblings or () if s.size is not None]
    return sum(sizes) or None


@contextmanager
def _quiet_hub() -> Iterator[None]:
    """Hides the hub's tqdm bars while ours draws: two live displays garble a terminal."""
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    hidden_already = are_progress_bars_disabled()
    if not hidden_already:
        disable_progress_bars()
    try:
        yield
    finally:
        if not hidden_already:
            enable_progress_bars()


@contextmanager
def _folder_progress(
    folder: Path, label: str, total: int | None, console: Console | None
) -> Iterator[None]:
    """A rich bar that measures the download folder on disk.

    It watches bytes land rather than hooking the hub's tqdm internals, which change between
    huggingface_hub releases; partial files (``*.incomplete``) count as they grow, and a resumed
    pull starts part-way."""
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn())
    stop = threading.Event()
    with Progress(TextColumn("[bold]{task.description}"), *columns, console=console) as bar:
        task = bar.add_task(label, total=total, completed=_size(folder))
        watcher = threading.Thread(target=_watch, args=(bar, task, folder, stop), daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            bar.update(task, completed=_size(folder))


def _watch(bar: Progress, task: TaskID, folder: Path, stop: threading.Event) -> None:
    while not stop.wait(POLL_S):
        bar.update(task, completed=_size(folder))


def _size(folder: Path) -> int:
    return sum(_file_size(Path(root, name)) for root, _, names in os.walk(folder) for name in names)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # a download renames its partial file while we walk
        return 0


def loaded_bytes(folder: Path, dtype: str) -> int:
    """About what the weights under ``folder`` take once loaded as ``dtype`` (a torch dtype
    name): the device manager's guess until a load has measured them. Safetensors headers
    give each tensor's element count, so weights stored in float32 and loaded in float16
    count half; other files count their size on disk. Of a variant beside its plain file
    (``model.fp16.safetensors``), and of a pickle beside its safetensors, one counts."""
    return sum(_file_bytes(path, dtype) for path in _weight_files(folder))


_WEIGHT_SUFFIXES = frozenset({".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".gguf"})
_VARIANT = re.compile(r"\.(fp16|bf16|fp32|non_ema|ema)(?=\.)")
_FLOATS = frozenset({"F64", "F32", "F16", "BF16"})
_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
_HEADER_MAX = 100_000_000  # a safetensors header is JSON; a larger one is not believed


def _weight_files(folder: Path) -> list[Path]:
    chosen: dict[tuple[Path, str], Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix not in _WEIGHT_SUFFIXES or not path.is_file():
            continue
        group = (path.parent, _VARIANT.sub("", path.name).rsplit(".", 1)[0])
        if group not in chosen or _preference(path) < _preference(chosen[group]):
            chosen[group] = path
    return list(chosen.values())


def _preference(path: Path) -> tuple[bool, bool]:
    """What ``from_pretrained`` reads without a variant: the plain file, safetensors first."""
    return bool(_VARIANT.search(path.name)), path.suffix != ".safetensors"


def _file_bytes(path: Path, dtype: str) -> int:
    if path.suffix == ".safetensors" and (header := _safetensors_header(path)) is not None:
        return sum(_tensor_bytes(info, dtype) for info in header.values() if "dtype" in info)
    return _file_size(path)


def _safetensors_header(path: Path) -> dict[str, dict[str, object]] | None:
    """The JSON header (8 bytes of little-endian length, then the JSON): no tensor is read."""
    try:
        with path.open("rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > _HEADER_MAX:
                return None
            header = json.loads(file.read(length))
    except (OSError, ValueError, struct.error):
        return None
    if not isinstance(header, dict):
        return None
    return {k: v for k, v in header.items() if isinstance(v, dict)}


def _tensor_bytes(info: dict[str, object], dtype: str) -> int:
    shape, offsets = info.get("shape"), info.get("data_offsets")
    stored = offsets[1] - offsets[0] if isinstance(offsets, list) and len(offsets) == 2 else 0
    target = _DTYPE_BYTES.get(dtype)
    if target is None or info.get("dtype") not in _FLOATS or not isinstance(shape, list):
        return int(stored)
    return math.prod(int(n) for n in shape) * target
