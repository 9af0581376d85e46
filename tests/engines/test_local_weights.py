"""``hyperlocal.engines.local.weights``: where weights live, what is installed, and pulling
(against a stub ``snapshot_download``, since there is no network here)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from hyperlocal.engines.local import weights
from hyperlocal.engines.local.weights import KNOWN, InstalledModel, WeightsKind
from hyperlocal.errors import GenerationError, HyperlocalError
from hyperlocal.settings import Settings

LOCAL_ENGINES = {"diffusers-image", "diffusers-video", "whisper-local", "musicgen", "image-to-3d"}


def put(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def test_models_dir_comes_from_settings_then_env_then_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(weights.ENV_MODELS_DIR, raising=False)
    configured = Settings(_env_file=None, data_dir=tmp_path, models_dir=tmp_path / "m")  # type: ignore[call-arg]
    assert weights.models_dir(configured) == (tmp_path / "m").resolve()
    bare = Settings.model_construct(data_dir=tmp_path, models_dir=None)
    assert weights.models_dir(bare) == (tmp_path / "models").resolve()
    monkeypatch.setenv(weights.ENV_MODELS_DIR, str(tmp_path / "env"))
    assert weights.models_dir(bare) == (tmp_path / "env").resolve()


@pytest.mark.parametrize("name", ["sd-turbo", "wan2.1-t2v-1.3b", "Whisper_Large"])
def test_plain_folder_names_pass(name: str) -> None:
    assert weights.check_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "../etc", "a/b", ".hidden", "a\\b", "x" * 129])
def test_names_that_could_leave_the_models_dir_are_refused(name: str) -> None:
    with pytest.raises(GenerationError, match="one folder name"):
        weights.check_name(name)


def test_installed_detects_each_format_and_sums_sizes(tmp_path: Path) -> None:
    layouts = {
        "sd": {"model_index.json": b"{}", "unet/diffusion_pytorch_model.safetensors": b"x" * 100},
        "musicgen": {"config.json": b"{}", "model.safetensors": b"x" * 10},
        "whisper": {"config.json": b"{}", "model.bin": b"x" * 5, "vocabulary.txt": b""},
        "smol": {"SmolLM2.Q4_1.gguf": b"x"},
        "h3d": {"hunyuan3d-dit-v2-0/config.yaml": b"", "hunyuan3d-dit-v2-0/model.ckpt": b""},
        "odd": {"README.md": b"hi"},
        ".cache": {"lock": b""},
    }
    for name, files in layouts.items():
        put(tmp_path / name, files)
    (tmp_path / "stray.txt").write_text("not a model")
    found = {m.name: (m.kind, m.size) for m in weights.installed(tmp_path)}
    assert found == {
        "h3d": (WeightsKind.HUNYUAN3D, 0),
        "musicgen": (WeightsKind.TRANSFORMERS, 12),
        "odd": (WeightsKind.UNKNOWN, 2),
        "sd": (WeightsKind.DIFFUSERS, 102),
        "smol": (WeightsKind.GGUF, 1),
        "whisper": (WeightsKind.WHISPER, 7),
    }
    assert [m.name for m in weights.installed(tmp_path)] == sorted(found)


def test_installed_is_empty_without_the_directory(tmp_path: Path) -> None:
    assert weights.installed(tmp_path / "missing") == []


def test_known_names_are_valid_and_point_at_local_engines() -> None:
    for name, known in KNOWN.items():
        assert weights.check_name(name) == name
        assert known.engine in LOCAL_ENGINES and "/" in known.repo_id


class FakeHub:
    """Stands in for the Hub: records snapshot_download's arguments and writes a pipeline."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def snapshot_download(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append((repo_id, kwargs))
        put(Path(kwargs["local_dir"]), {"model_index.json": b"{}", "vae/w.bin": b"x" * 1000})
        return str(kwargs["local_dir"])

    def model_info(self, repo_id: str, **kwargs: Any) -> SimpleNamespace:
        self.calls.append((f"info:{repo_id}", kwargs))
        if self.total is None:
            raise OSError("offline")  # the bar then has no end, and the pull goes on
        sizes = [SimpleNamespace(size=self.total), SimpleNamespace(size=None)]
        return SimpleNamespace(siblings=sizes)


@pytest.fixture(params=[1002, None], ids=["sized", "unsized"])
def hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    fake = FakeHub(request.param)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", fake.model_info)
    return fake


def test_pull_downloads_into_the_named_folder(hub: FakeHub, tmp_path: Path) -> None:
    out = io.StringIO()
    pulled = weights.pull(
        "sd-turbo",
        "stabilityai/sd-turbo",
        models_dir=tmp_path,
        revision="main",
        allow_patterns=["*.json", "vae/*"],
        console=Console(file=out, width=120),
    )
    assert hub.calls == [
        ("info:stabilityai/sd-turbo", {"revision": "main", "files_metadata": True}),
        (
            "stabilityai/sd-turbo",
            {
                "local_dir": tmp_path / "sd-turbo",
                "revision": "main",
                "allow_patterns": ["*.json", "vae/*"],
            },
        ),
    ]
    assert pulled == InstalledModel("sd-turbo", tmp_path / "sd-turbo", 1002, WeightsKind.DIFFUSERS)
    assert "sd-turbo" in out.getvalue()


def test_pull_named_knows_the_repository_of_known_names(hub: FakeHub, tmp_path: Path) -> None:
    console = Console(file=io.StringIO())
    weights.pull_named("hunyuan3d-2", models_dir=tmp_path, console=console)
    weights.pull_named("mine", "me/my-model", models_dir=tmp_path, console=console)
    downloads = [(repo, kw["allow_patterns"]) for repo, kw in hub.calls if "local_dir" in kw]
    assert downloads == [("tencent/Hunyuan3D-2", ["hunyuan3d-dit-v2-0/*"]), ("me/my-model", None)]
    with pytest.raises(HyperlocalError, match="not a known name"):
        weights.pull_named("mystery", models_dir=tmp_path, console=console)


def test_a_failed_pull_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def unreachable(repo_id: str, **kwargs: Any) -> str:
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", FakeHub(None).model_info)
    with pytest.raises(HyperlocalError, match=r"could not pull org/model .*network is unreachable"):
        weights.pull("model", "org/model", models_dir=tmp_path, console=Console(file=io.StringIO()))


def test_pull_refuses_a_name_that_is_a_path(tmp_path: Path) -> None:
    with pytest.raises(GenerationError):
        weights.pull("../up", "org/model", models_dir=tmp_path)
