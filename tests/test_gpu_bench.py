"""``bench/gpu_serving.py``'s checks that need no GPU: its ``--gpu`` part refuses cleanly where
torch sees no CUDA device, and the SD 2.1 configs in ``bench/gpu_configs`` build, shrunk by
``tiny.json``, into a pipeline that diffusers loads back and runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_the_gpu_part_says_there_is_no_cuda_device() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the GPU part would run")
    done = subprocess.run(
        [sys.executable, str(BENCH / "gpu_serving.py"), "--gpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr


@pytest.mark.filterwarnings(  # diffusers' schedulers vs numpy 2; see the image tests
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_the_sd21_configs_build_a_pipeline_that_loads_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("diffusers")
    monkeypatch.syspath_prepend(str(BENCH))
    import _sd_models

    full = _sd_models.configs(tiny=False)
    assert full["unet"]["block_out_channels"] == [320, 640, 1280, 1280]  # SD 2.1's, as written
    assert full["text_encoder"]["num_hidden_layers"] == 23
    _sd_models.build_pipeline(tmp_path / "sd", tiny=True)
    pipe = _sd_models.load_pipeline(tmp_path / "sd")
    assert list(pipe.unet.config.down_block_types) == full["unet"]["down_block_types"]
    seconds = _sd_models.paint(pipe, size=64, steps=1, guidance=7.5, seed=1)
    assert seconds > 0
    assert _sd_models.read_seconds(tmp_path / "sd")[1] == sum(
        p.stat().st_size for p in _sd_models.weight_files(tmp_path / "sd")
    )
