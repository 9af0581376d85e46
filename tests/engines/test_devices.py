"""The device manager (``engines.local.devices``) on fake devices, with a stepped clock.

The fake devices hold what each fake model allocates on them until the model is collected,
and fail a load that would take them past their budget: an out-of-memory. So "never over the
budget" is checked where it matters, on what the devices hold, not on the manager's books.
Every wait here ends on an event; the timeouts only bound a failure.
"""

from __future__ import annotations

import json
import logging
import random
import struct
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hyperlocal.engines.base import Category, EngineContext, GenerationRequest
from hyperlocal.engines.local.devices import (
    DeviceManager,
    ModelSpec,
    ModelTooLargeError,
    NoDeviceError,
)
from hyperlocal.engines.local.probe import DeviceMemory, SystemProbe, tensor_bytes
from hyperlocal.engines.local.runtime import devices_for, sweep_interval
from hyperlocal.engines.local.weights import loaded_bytes
from hyperlocal.errors import GenerationError
from hyperlocal.runtime import close_services, open_services
from hyperlocal.settings import Settings
from hyperlocal.worker import preload_models
from tests.conftest import SettingsFactory
from tests.support import TEST_ENGINES

GIB = 1024**3
FRACTION = 0.5  # of each fake device's total: its budget
TIMEOUT_S = 60.0  # bounds a failure only
THREADS, JOBS = 6, 12  # each eviction runs the garbage collector: a few hundred ms here


class OutOfMemoryError(Exception):
    """What a real device raises when a load does not fit."""


class FakeModel:
    """Holds ``size`` bytes of its device until it is collected."""

    def __init__(self, name: str, device: str, size: int, devices: FakeDevices) -> None:
        self.name, self.device, self.size = name, device, size
        weakref.finalize(self, devices.free, device, size)


class FakeDevices:
    """Fake accelerators behind the manager's ``MemoryProbe``: ``load`` allocates, a model's
    collection frees, and an allocation past the limit (the budget, or with ``strict`` off
    the total) is an out-of-memory. The size is measured, as on CUDA, by the growth of what
    the device holds."""

    def __init__(self, totals: dict[str, float], *, strict: bool = True) -> None:
        self.totals = {name: int(gib * GIB) for name, gib in totals.items()}
        share = FRACTION if strict else 1.0
        self.limits = {name: int(total * share) for name, total in self.totals.items()}
        self.held = dict.fromkeys(self.totals, 0)
        self.peak = dict.fromkeys(self.totals, 0)
        self.loads: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def devices(self) -> list[str]:
        return list(self.totals)

    def memory(self, device: str) -> DeviceMemory:
        return DeviceMemory(self.totals[device], self.totals[device] - self.held[device])

    def allocated(self, device: str) -> int:
        return self.held[device]

    def footprint(self, _model: object) -> int:
        return 0  # measured from ``allocated`` alone, as CUDA measures it

    def load(self, name: str, device: str, size: int) -> FakeModel:
        with self._lock:
            if self.held[device] + size > self.limits[device]:
                raise OutOfMemoryError(f"{name} on {device}: {self.held[device]} + {size}")
            self.held[device] += size
            self.peak[device] = max(self.peak[device], self.held[device])
            self.loads.append((name, device))
        return FakeModel(name, device, size, self)

    def free(self, device: str, size: int) -> None:
        with self._lock:
            self.held[device] -= size

    def spec(
        self,
        name: str,
        gib: float,
        *,
        estimate: float | None = None,
        wants: str = "cuda",
        owner: str = "fake-engine",
        concurrency: int = 1,
    ) -> ModelSpec[FakeModel]:
        size = int(gib * GIB)

        def load(device: str) -> FakeModel:
            return self.load(name, device, size)

        guess = size if estimate is None else int(estimate * GIB)
        return ModelSpec(owner, name, name, wants, guess, load, concurrency)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float = 1.0) -> None:
        self.now += seconds


class Observer:
    """The LoadObserver: counts models per device, and signals each unload."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.unloaded = threading.Event()

    def model_loaded(self, engine: str, seconds: float) -> None:
        return None

    def resident(self, device: str, change: int) -> None:
        self.count[device] = self.count.get(device, 0) + change
        if change < 0:
            self.unloaded.set()


def manager(
    devices: FakeDevices,
    clock: Callable[[], float] | None = None,
    *,
    idle_seconds: float = 600.0,
    seen: Observer | None = None,
    sweep_every: float | None = None,
) -> DeviceManager:
    return DeviceManager(
        devices,
        fraction=FRACTION,
        idle_seconds=idle_seconds,
        clock=clock or Clock(),
        observer=seen,
        sweep_every=sweep_every,
    )


def on_shelf(devices: DeviceManager, device: str = "cuda:0") -> list[str]:
    shot = {d.device: d for d in devices.snapshot()}[device]
    return sorted(m.name for m in shot.models)


def use(devices: DeviceManager, spec: ModelSpec[FakeModel]) -> str:
    with devices.use(spec) as lease:
        assert lease.model.name == spec.name
        return lease.device


# -- eviction ---------------------------------------------------------------------------------


def test_the_least_recently_used_idle_model_is_evicted_first() -> None:
    fake, clock = FakeDevices({"cuda:0": 20}), Clock()  # a 10 GiB budget
    devices = manager(fake, clock)
    a, b, c = (fake.spec(name, 4) for name in "abc")  # two fit at once
    for spec in (a, b, a):  # b is now the least recently used
        use(devices, spec)
        clock.step()
    use(devices, c)
    assert on_shelf(devices) == ["a", "c"]
    clock.step()
    use(devices, b)  # a (used at 2) is older than c (at 3)
    assert on_shelf(devices) == ["b", "c"]
    assert [name for name, _ in fake.loads] == ["a", "b", "c", "b"]
    assert fake.held["cuda:0"] == 8 * GIB  # what was evicted was freed


def test_a_model_in_use_is_never_evicted() -> None:
    fake, clock = FakeDevices({"cuda:0": 20}), Clock()
    devices = manager(fake, clock)
    a, b, c = (fake.spec(name, 4) for name in "abc")
    with devices.use(a) as held:  # the oldest, but in use
        clock.step()
        use(devices, b)
        clock.step()
        use(devices, c)
        assert on_shelf(devices) == ["a", "c"]
        assert held.model.name == "a"


def test_a_random_concurrent_workload_never_passes_the_budget() -> None:
    """Three models that need twice the budget together, six threads, mixed at random:
    every job runs, no load meets an out-of-memory, and the devices never hold more."""
    fake = FakeDevices({"cuda:0": 20})  # budget 10 GiB; 4 + 6 fit together, 10 alone
    devices = manager(fake)
    specs = [fake.spec("a", 4), fake.spec("b", 6, concurrency=2), fake.spec("c", 10)]
    ran = [0]
    counting = threading.Lock()

    def jobs(seed: int) -> None:
        pick = random.Random(seed)
        for _ in range(JOBS):
            spec = pick.choice(specs)
            with devices.use(spec) as lease:
                assert lease.model.name == spec.name
                assert spec.name in on_shelf(devices)  # held, so never evicted
                threading.Event().wait(pick.random() / 1000)  # hold it a moment
            with counting:
                ran[0] += 1

    with ThreadPoolExecutor(THREADS) as pool:
        for done in [pool.submit(jobs, seed) for seed in range(THREADS)]:
            done.result(TIMEOUT_S)  # re-raises an out-of-memory, had there been one

    assert ran[0] == THREADS * JOBS
    assert 3 * GIB < fake.peak["cuda:0"] <= 10 * GIB
    assert len(fake.loads) > 3  # models were evicted and loaded again
    (device,) = devices.snapshot()
    assert device.used <= device.budget == 10 * GIB


# -- pinning and idle unload ------------------------------------------------------------------


def test_a_pinned_model_is_never_evicted_nor_unloaded_when_idle() -> None:
    fake, clock = FakeDevices({"cuda:0": 20}), Clock()
    devices = manager(fake, clock, idle_seconds=60)
    assert devices.preload(fake.spec("pinned", 4)) == "cuda:0"
    for name in ("a", "b", "a"):  # each 6 GiB: one at a time beside the pinned model
        clock.step()
        use(devices, fake.spec(name, 6))
    assert on_shelf(devices) == ["a", "pinned"]
    clock.step(3600)
    assert devices.sweep() == 1
    assert on_shelf(devices) == ["pinned"]
    (device,) = devices.snapshot()
    assert [(m.name, m.pinned) for m in device.models] == [("pinned", True)]
    message = r"needs 7\.0 GiB; device cuda:0's budget is 10\.0 GiB, 4\.0 GiB of it held by pinned"
    with pytest.raises(ModelTooLargeError, match=message):
        use(devices, fake.spec("seven", 7))


def test_idle_models_are_unloaded_on_a_stepped_clock() -> None:
    fake, clock, seen = FakeDevices({"cuda:0": 20}), Clock(), Observer()
    devices = manager(fake, clock, idle_seconds=600, seen=seen)
    use(devices, fake.spec("a", 4))
    clock.step(599)
    assert devices.sweep() == 0
    assert on_shelf(devices) == ["a"]
    clock.step(1)
    with devices.use(fake.spec("busy", 4)):
        clock.step(10_000)  # in use all along: not idle
        assert devices.sweep() == 1
        assert on_shelf(devices) == ["busy"]
    assert seen.count == {"cuda:0": 1}
    assert fake.held["cuda:0"] == 4 * GIB  # a's memory was given back


def test_the_sweeper_thread_unloads_idle_models() -> None:
    fake, clock, seen = FakeDevices({"cuda:0": 20}), Clock(), Observer()
    devices = manager(fake, clock, idle_seconds=5, seen=seen, sweep_every=0.01)
    use(devices, fake.spec("a", 4))
    clock.step(5)
    assert seen.unloaded.wait(TIMEOUT_S), "the sweeper never unloaded the idle model"
    assert on_shelf(devices) == []


def test_the_sweep_interval_follows_the_idle_time() -> None:
    assert sweep_interval(600) == 60
    assert sweep_interval(30) == 3
    assert sweep_interval(0.5) == 1


# -- placement ---------------------------------------------------------------------------------


def test_a_job_goes_where_its_model_is_then_to_the_most_free_budget() -> None:
    fake = FakeDevices({"cuda:0": 20, "cuda:1": 16, "cpu": 64})  # budgets 10 and 8 GiB
    devices = manager(fake)
    a, b = fake.spec("a", 3), fake.spec("b", 0.5)
    assert use(devices, a) == "cuda:0"  # 10 GiB free against 8
    assert use(devices, b) == "cuda:1"  # 8 against 7
    assert use(devices, a) == "cuda:0"  # where a is, though cuda:1 has more free (7.5)
    with devices.use(a) as busy:  # its copy is busy: a second copy where most is free
        assert busy.device == "cuda:0"
        assert use(devices, a) == "cuda:1"
    assert fake.loads == [("a", "cuda:0"), ("b", "cuda:1"), ("a", "cuda:1")]
    assert use(devices, fake.spec("small", 1, wants="cpu")) == "cpu"
    assert use(devices, fake.spec("pinned-to-1", 1, wants="cuda:1")) == "cuda:1"


def test_a_model_that_can_never_fit_fails_naming_the_sizes() -> None:
    fake = FakeDevices({"cuda:0": 18})  # a 9 GiB budget
    devices = manager(fake)
    with pytest.raises(GenerationError) as raised:
        use(devices, fake.spec("big", 14.2))
    assert isinstance(raised.value, ModelTooLargeError)
    assert raised.value.message == "model big needs 14.2 GiB; device cuda:0's budget is 9.0 GiB"
    assert fake.loads == []


def test_a_device_this_worker_lacks_is_refused() -> None:
    devices = manager(FakeDevices({"cpu": 8}))
    with pytest.raises(NoDeviceError, match=r"asks for device 'cuda'; this worker has cpu"):
        use(devices, FakeDevices({"cpu": 8}).spec("a", 1))


def test_a_load_waits_for_the_model_in_use_to_be_released() -> None:
    fake = FakeDevices({"cuda:0": 20})
    devices = manager(fake)
    waiting = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        with devices.use(fake.spec("a", 6)):
            later = pool.submit(_use_after_waiting, devices, fake.spec("b", 6), waiting)
            assert waiting.wait(TIMEOUT_S), "b never waited"
            assert not later.done() and [n for n, _ in fake.loads] == ["a"]
        assert later.result(TIMEOUT_S) == "cuda:0"  # a, released, made room
    assert on_shelf(devices) == ["b"]
    assert fake.held["cuda:0"] == 6 * GIB


def _use_after_waiting(
    devices: DeviceManager, spec: ModelSpec[FakeModel], waiting: threading.Event
) -> str:
    with devices.use(spec, waiting.set) as lease:
        return lease.device


def test_a_waiting_job_that_gives_up_leaves_nothing_behind() -> None:
    fake = FakeDevices({"cuda:0": 20})
    devices = manager(fake)

    def cancelled() -> None:
        raise RuntimeError("cancelled")

    with (
        devices.use(fake.spec("a", 6)),
        pytest.raises(RuntimeError, match="cancelled"),
        devices.use(fake.spec("b", 6), cancelled),
    ):
        pytest.fail("b was placed")
    assert on_shelf(devices) == ["a"]
    assert use(devices, fake.spec("c", 4)) == "cuda:0"  # a, idle now, and c fit


# -- measuring -------------------------------------------------------------------------------


def test_the_measured_size_replaces_the_estimate_and_settles_the_budget() -> None:
    fake, clock = FakeDevices({"cuda:0": 20}, strict=False), Clock()
    devices = manager(fake, clock)
    use(devices, fake.spec("old", 4))
    clock.step()
    use(devices, fake.spec("newer", 3))
    clock.step()
    use(devices, fake.spec("liar", 5, estimate=2))  # room for 2 without evicting
    (device,) = devices.snapshot()
    sizes = {m.name: m.size for m in device.models}
    assert sizes == {"newer": 3 * GIB, "liar": 5 * GIB}  # the oldest made room afterwards
    assert device.used <= device.budget
    clock.step()
    use(devices, fake.spec("liar", 5, estimate=2))  # loaded already: no second load
    assert [n for n, _ in fake.loads] == ["old", "newer", "liar"]


def test_a_failed_load_gives_its_room_back() -> None:
    fake = FakeDevices({"cuda:0": 20})
    devices = manager(fake)

    def broken(_device: str) -> FakeModel:
        raise GenerationError("not a pipeline")

    spec = ModelSpec("engine", "broken", "broken", "cuda", 9 * GIB, broken)
    with pytest.raises(GenerationError, match="not a pipeline"), devices.use(spec):
        pytest.fail("a broken model was placed")
    assert on_shelf(devices) == []
    assert use(devices, fake.spec("a", 9)) == "cuda:0"


def test_unloading_an_owner_leaves_the_others() -> None:
    fake, seen = FakeDevices({"cuda:0": 20}), Observer()
    devices = manager(fake, seen=seen)
    use(devices, fake.spec("one", 2, owner="image"))
    devices.preload(fake.spec("two", 2, owner="image"))
    use(devices, fake.spec("three", 2, owner="music"))
    devices.unload("image")
    assert on_shelf(devices) == ["three"]
    assert seen.count == {"cuda:0": 1}
    devices.unload()
    assert on_shelf(devices) == [] and fake.held["cuda:0"] == 0


def test_the_snapshot_shows_each_device_and_its_models() -> None:
    fake, clock = FakeDevices({"cuda:0": 20, "cpu": 8}), Clock()
    devices = manager(fake, clock)
    assert devices.snapshot() == []  # nothing placed: no device probed
    use(devices, fake.spec("a", 2))
    clock.step(30)
    with devices.use(fake.spec("b", 1)):
        shots = {d.device: d for d in devices.snapshot()}
    gpu = shots["cuda:0"]
    assert (gpu.total, gpu.budget, gpu.used, gpu.free) == (20 * GIB, 10 * GIB, 3 * GIB, 17 * GIB)
    models = {m.name: (m.users, m.idle_s, m.loading) for m in gpu.models}
    assert models == {"a": (0, 30.0, False), "b": (1, 0.0, False)}
    assert (shots["cpu"].budget, shots["cpu"].used) == (4 * GIB, 0)


# -- the real probe, weights on disk, and the adapters' sharing -------------------------------


def safetensors(path: Path, tensors: dict[str, tuple[str, list[int], int]]) -> None:
    """A safetensors file with these (dtype, shape, bytes stored) tensors, of zeros."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape, size) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + bytes(offset))


def test_the_estimate_reads_safetensors_headers_and_counts_one_file_per_set(
    tmp_path: Path,
) -> None:
    unet = tmp_path / "unet"
    safetensors(unet / "diffusion_pytorch_model.safetensors", {"w": ("F32", [10, 10], 400)})
    safetensors(unet / "diffusion_pytorch_model.fp16.safetensors", {"w": ("F16", [10, 10], 200)})
    (unet / "diffusion_pytorch_model.bin").write_bytes(bytes(999))  # beside its safetensors
    safetensors(tmp_path / "vae" / "model.safetensors", {"n": ("I64", [3], 24)})
    (tmp_path / "whisper" / "model.bin").parent.mkdir()
    (tmp_path / "whisper" / "model.bin").write_bytes(bytes(50))
    (tmp_path / "model_index.json").write_text("{}")
    assert loaded_bytes(tmp_path, "float32") == 400 + 24 + 50
    assert loaded_bytes(tmp_path, "float16") == 200 + 24 + 50  # floats cast, integers kept
    assert loaded_bytes(tmp_path / "absent", "float16") == 0


def test_the_system_probe_sees_the_cpu_and_counts_tensors_once() -> None:
    torch = pytest.importorskip("torch")
    probe = SystemProbe()
    assert probe.devices()[-1] == "cpu"
    memory = probe.memory("cpu")
    assert 0 < memory.free <= memory.total
    layer = torch.nn.Linear(10, 10)  # 110 float32 parameters
    both = torch.nn.Sequential(layer, layer)  # the same parameters, shared
    assert probe.footprint(both) == 440
    assert tensor_bytes(_Pair(layer, torch.nn.Linear(2, 2))) == 440 + 24


class _Pair:
    def __init__(self, first: object, second: object) -> None:
        self.first, self.second = first, second


def settings_for(root: Path) -> Settings:
    return Settings(_env_file=None, data_dir=root / "data", models_dir=root / "models")


def test_adapters_of_one_context_share_one_manager(tmp_path: Path) -> None:
    context = EngineContext(settings=settings_for(tmp_path))
    first = devices_for(context)
    assert devices_for(context) is first
    assert devices_for(EngineContext(settings=context.settings)) is not first


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.engines.tiny_models import one_torch_thread, tiny_sd

    root = tmp_path_factory.mktemp("devices")
    with one_torch_thread():
        tiny_sd(root / "models" / "tiny-sd")
        yield root


@pytest.mark.filterwarnings(  # diffusers' Euler scheduler vs numpy 2; see the image tests
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
async def test_an_adapter_pins_measures_and_shares_its_model(tiny_sd_dir: Path) -> None:
    from hyperlocal.engines.local import image

    context = EngineContext(settings=settings_for(tiny_sd_dir))
    engine, twin = image.create(context), image.create(context)
    assert await engine.preload({"weights": "tiny-sd"}) == "cpu"
    (cpu,) = devices_for(context).snapshot()
    (model,) = cpu.models
    assert (model.name, model.owner, model.pinned) == ("tiny-sd", "diffusers-image", True)
    estimate = loaded_bytes(tiny_sd_dir / "models" / "tiny-sd", "float32")
    assert estimate / 2 < model.size < estimate * 2  # measured: the tensors, as loaded

    request = GenerationRequest(
        job_id="job_1",
        model="local-sd",
        category=Category.IMAGE,
        params={"prompt": "a lighthouse", "size": "64x64"},
        options={"weights": "tiny-sd", "steps": 1},
    )
    result = await twin.generate(request, _ignore)  # the other engine finds it loaded
    assert result.extra["device"] == "cpu"
    assert [m.users for m in devices_for(context).snapshot()[0].models] == [0]
    await engine.aclose()
    assert devices_for(context).snapshot()[0].models == ()


async def _ignore(_fraction: float, _message: str | None) -> None:
    return None


CATALOG = """
[[model]]
id = "local-sd"
category = "image"
name = "Tiny SD"
engine = "diffusers-image"
engine_options = { weights = "tiny-sd", steps = 1 }
price = { kind = "flat", credits = 1 }
inputs.prompt = { type = "string", required = true }

[[model]]
id = "test-fail-t2i"
category = "image"
name = "Always fails"
engine = "test-fail"
price = { kind = "flat", credits = 5 }
inputs.prompt = { type = "string", required = true }
"""


@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
async def test_the_worker_preloads_the_models_it_is_told(
    tiny_sd_dir: Path, make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = tiny_sd_dir / "catalog.toml"
    catalog.write_text(CATALOG)
    settings = make_settings(catalog=catalog, models_dir=tiny_sd_dir / "models")
    services = await open_services(settings, TEST_ENGINES, start_queue=False)
    try:
        with caplog.at_level(logging.INFO, logger="hyperlocal.engines.local.devices"):
            await preload_models(services, ["local-sd"])
        assert "pinned tiny-sd on cpu" in caplog.messages
        with pytest.raises(ValueError, match="--preload test-fail-t2i: engine test-fail loads"):
            await preload_models(services, ["test-fail-t2i"])
        with pytest.raises(ValueError, match="--preload nowhere: "):
            await preload_models(services, ["nowhere"])
    finally:
        await close_services(services)
