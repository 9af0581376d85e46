"""How the device manager sees memory: the :class:`MemoryProbe` interface, and the real one.

``SystemProbe`` asks torch about CUDA devices (imported at the manager's first placement, by
then a local engine's job is running and needs it anyway) and the operating system about the
CPU's memory. A model's size is measured through it after each load: the growth of torch's
CUDA allocator, and the bytes of the tensors the model holds, whichever is larger (the CPU
has no allocator count to ask, so there it is the tensors alone).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["DeviceMemory", "MemoryProbe", "SystemProbe", "tensor_bytes"]


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    total: int  # bytes
    free: int  # bytes free now as the device reports it, other processes' use included


class MemoryProbe(Protocol):
    """What the device manager asks about memory; tests inject fake devices through it."""

    def devices(self) -> Sequence[str]:
        """Device names, ``cuda:N`` then ``cpu``; asked once, at the first placement."""

    def memory(self, device: str) -> DeviceMemory: ...

    def allocated(self, device: str) -> int:
        """Bytes this process holds on ``device`` now (0 where that cannot be told)."""

    def footprint(self, model: object) -> int:
        """Bytes of the tensors that ``model`` holds (0 where it holds none we can see)."""


class SystemProbe:
    """Each CUDA device that torch sees, then the CPU; without torch, the CPU alone."""

    def devices(self) -> list[str]:
        return [*(f"cuda:{i}" for i in range(_cuda_count())), "cpu"]

    def memory(self, device: str) -> DeviceMemory:
        if device == "cpu":
            return _host_memory()
        torch: Any = sys.modules["torch"]
        index = _index(device)
        total = int(torch.cuda.get_device_properties(index).total_memory)
        if index != torch.cuda.current_device() and not torch.cuda.memory_reserved(index):
            return DeviceMemory(total, total)  # untouched: asking would start a context there
        free, total = torch.cuda.mem_get_info(index)
        return DeviceMemory(int(total), int(free))

    def allocated(self, device: str) -> int:
        if device == "cpu":
            return 0
        torch: Any = sys.modules["torch"]
        return int(torch.cuda.memory_allocated(_index(device)))

    def footprint(self, model: object) -> int:
        return tensor_bytes(model)


def tensor_bytes(model: object) -> int:
    """Bytes of the distinct tensors in the torch modules that ``model`` is or holds: its
    attributes, a diffusers pipeline's components, or the fields of a dataclass of them,
    two levels down; tensors that two modules share count once."""
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return 0
    seen: set[int] = set()
    total = 0
    for module in _modules(model, torch.nn.Module, depth=2):
        for tensor in (*module.parameters(), *module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


def _modules(value: object, kind: type, depth: int) -> Iterator[Any]:
    if isinstance(value, kind):
        yield value
    elif depth > 0:
        for part in _parts(value):
            yield from _modules(part, kind, depth - 1)


def _parts(value: object) -> list[object]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [getattr(value, f.name) for f in dataclasses.fields(value)]
    components = getattr(value, "components", None)  # a diffusers pipeline's modules
    if isinstance(components, dict):
        return list(components.values())
    return list(vars(value).values()) if hasattr(value, "__dict__") else []


def _cuda_count() -> int:
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _index(device: str) -> int:
    return int(device.partition(":")[2] or 0)


def _host_memory() -> DeviceMemory:
    page = os.sysconf("SC_PAGE_SIZE")
    total = os.sysconf("SC_PHYS_PAGES") * page
    return DeviceMemory(total, _available(page) or total)


def _available(page: int) -> int:
    """MemAvailable on Linux (free plus what the page cache would give back), else the free
    pages where the system counts them."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    names = os.sysconf_names
    return os.sysconf("SC_AVPHYS_PAGES") * page if "SC_AVPHYS_PAGES" in names else 0
