"""``hyperlocal worker --gpus``'s supervisor, on the CPU: device ids, and the children's lives.

Its children here are small Python processes that record their ``CUDA_VISIBLE_DEVICES`` and
pid, then wait for SIGTERM (tests/scaleout/test_workers.py runs real ``hyperlocal worker``
children). The supervisor runs in a subprocess of its own, as it does in production: it takes
the signals of the process it runs in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hyperlocal.supervisor import gpu_ids, visible_gpus

CHILD = """
import os, pathlib, signal, sys
mark = pathlib.Path(sys.argv[1]) / os.environ["CUDA_VISIBLE_DEVICES"]
def stop(*_):
    mark.with_suffix(".stopped").write_text("")
    sys.exit(0)
if sys.argv[2] == "done":
    sys.exit(0)
if sys.argv[2] == "wait":  # "starting": SIGTERM's default action, as before a handler is set
    signal.signal(signal.SIGTERM, stop)
mark.write_text(str(os.getpid()))
while True:
    signal.pause()
"""
SUPERVISOR = """
import json, sys
from hyperlocal.supervisor import Child, supervise
children = [Child(device, tuple(argv)) for device, argv in json.loads(sys.argv[1])]
sys.exit(supervise(children, grace=5.0))
"""
DEADLINE_S = 60.0
SMI_LISTING = "GPU 0: NVIDIA H100 (UUID: GPU-a)\\nGPU 1: NVIDIA H100 (UUID: GPU-b)\\n"


def test_gpus_names_devices_or_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gpu_ids("0,1") == ["0", "1"]
    assert gpu_ids(" 2 , GPU-5d3e ") == ["2", "GPU-5d3e"]
    for wrong in ("", "0,", "1,1"):
        with pytest.raises(ValueError, match="distinct device ids"):
            gpu_ids(wrong)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert gpu_ids("all") == ["3", "1"]  # what this process may use, as CUDA reads it
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ValueError, match="--gpus all: no GPU found"):
        gpu_ids("all")


def test_all_is_what_cuda_visible_devices_allows_else_what_nvidia_smi_lists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,-1,2")
    assert visible_gpus() == ["0", "1"]  # CUDA stops at the first invalid entry
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nprintf '{SMI_LISTING}'\n")
    smi.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus() == ["0", "1"]
    smi.write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")
    assert visible_gpus(ask_torch=False) == []


@contextmanager
def supervised(marks: Path, *modes: str) -> Iterator[subprocess.Popen[bytes]]:
    """The supervisor over one child per mode, with devices 0, 1...: ``wait`` for SIGTERM and
    stop, ``starting`` (SIGTERM kills it), or ``done`` at once."""
    children = [
        (str(i), [sys.executable, "-c", CHILD, str(marks), mode]) for i, mode in enumerate(modes)
    ]
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    parent = subprocess.Popen([sys.executable, "-c", SUPERVISOR, json.dumps(children)], env=env)
    try:
        yield parent
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def wait_for(path: Path) -> Path:
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)
    return path


def pid_of(marks: Path, device: str) -> int:
    path = wait_for(marks / device)
    while not path.read_text():  # written, not yet flushed
        time.sleep(0.02)
    return int(path.read_text())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_each_child_gets_its_device_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    with supervised(tmp_path, "wait", "wait") as parent:
        pids = [pid_of(tmp_path, device) for device in ("0", "1")]
        assert parent.pid not in pids and len(set(pids)) == 2
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(DEADLINE_S) == 0
    assert (tmp_path / "0.stopped").exists() and (tmp_path / "1.stopped").exists()
    assert all(gone(pid) for pid in pids)  # the supervisor waited for them


def test_a_child_stopped_before_it_set_its_handler_counts_as_stopped(tmp_path: Path) -> None:
    with supervised(tmp_path, "wait", "starting") as parent:
        pids = [pid_of(tmp_path, device) for device in ("0", "1")]
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(DEADLINE_S) == 0  # it died of the SIGTERM it was sent: as asked
    assert all(gone(pid) for pid in pids)


def test_a_child_that_dies_stops_the_others_and_fails_the_set(tmp_path: Path) -> None:
    with supervised(tmp_path, "wait", "wait") as parent:
        doomed, other = pid_of(tmp_path, "0"), pid_of(tmp_path, "1")
        os.kill(doomed, signal.SIGKILL)
        assert parent.wait(DEADLINE_S) == 128 + signal.SIGKILL
    assert (tmp_path / "1.stopped").exists() and not (tmp_path / "0.stopped").exists()
    assert gone(other)


def test_children_that_finish_on_their_own_end_the_supervisor(tmp_path: Path) -> None:
    with supervised(tmp_path, "done", "done") as parent:
        assert parent.wait(DEADLINE_S) == 0  # as --burst workers leave once idle


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_children_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    with supervised(tmp_path, "wait", "wait") as parent:
        for device in ("0", "1"):
            pid_of(tmp_path, device)
        parent.kill()
        parent.wait()
    for device in ("0", "1"):
        wait_for(tmp_path / f"{device}.stopped")  # SIGTERM, their graceful path


def test_serve_gives_each_gpu_an_in_process_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    from hyperlocal.cli.server import _a_lane_per_gpu
    from hyperlocal.settings import Settings

    settings = Settings(_env_file=None, worker_concurrency=4)  # type: ignore[call-arg]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5")
    assert _a_lane_per_gpu(settings).worker_concurrency == 6
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert _a_lane_per_gpu(settings).worker_concurrency == 4  # already one lane each
