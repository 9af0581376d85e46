"""``wrk`` (Debian's package) as a load generator: C, one thread, a fraction of the CPU that
an httpx client needs per request, so that on a small machine the server under test gets the
cores. The API key reaches wrk's Lua script through the environment (``BENCH_KEY``): it is
never written to disk or printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "available", "run_wrk"]

_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  bad = 0
  wrk.method = os.getenv("BENCH_METHOD")
  wrk.body = os.getenv("BENCH_BODY")
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
  local prefer = os.getenv("BENCH_PREFER")
  if prefer ~= "" then wrk.headers["Prefer"] = prefer end
  expect = tonumber(os.getenv("BENCH_EXPECT"))
end
function response(status, headers, body)
  if status ~= expect then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"bad_status": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    b, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_s: float
    p99_s: float
    errors: int  # an unexpected status, or a socket error

    @property
    def rps(self) -> float:
        return (self.requests - self.errors) / self.duration_s


def available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    *,
    key: str,
    body: bytes,
    connections: int,
    seconds: float,
    expect: int,
    prefer: str = "",
) -> WrkResult:
    """``connections`` keep-alive connections for ``seconds``, each sending ``body`` as a POST."""
    with tempfile.TemporaryDirectory(prefix="hyperlocal-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT)
        env = os.environ | {
            "BENCH_KEY": key,
            "BENCH_METHOD": "POST",
            "BENCH_BODY": body.decode(),
            "BENCH_PREFER": prefer,
            "BENCH_EXPECT": str(expect),
        }
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        p50_s=data["p50_us"] / 1e6,
        p99_s=data["p99_us"] / 1e6,
        errors=data["bad_status"] + data["socket_errors"],
    )
