"""A real Prometheus (Debian's ``prometheus`` package) on loopback, started by a test with a
generated config, and its HTTP API's instant queries."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import stop
from tests.support import free_port


def preview_chat_model(model_id: str) -> str:
    """A catalogue entry (TOML) for a 1-credit chat model on the built-in preview engine: the
    chats of a metrics workload."""
    return f"""
[[model]]
id = "{model_id}"
category = "chat"
name = "Preview chat"
engine = "preview-chat"
price = {{ kind = "flat", credits = 1 }}
"""


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (Debian: apt-get install prometheus)")
    return binary


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: Sequence[str]  # host:port
    bearer: str | None = None  # sent from a file of its own, as an operator keeps an admin key


def scrape_config(tmp: Path, *jobs: ScrapeJob, rules: Sequence[Path] = ()) -> Path:
    """A config that scrapes every job's targets, and evaluates ``rules``, every second."""
    lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s"]
    lines += ["  evaluation_interval: 1s", "rule_files:", *(f"  - {r}" for r in rules)]
    lines += ["scrape_configs:"]
    for job in jobs:
        lines += [f"  - job_name: {job.name}", "    metrics_path: /metrics"]
        if job.bearer is not None:
            secret = tmp / f"{job.name}-key"
            secret.write_text(job.bearer)
            secret.chmod(0o600)
            lines += ["    authorization:", f"      credentials_file: {secret}"]
        targets = ", ".join(repr(t) for t in job.targets)
        lines += ["    static_configs:", f"      - targets: [{targets}]"]
    config = tmp / "prometheus.yml"
    config.write_text("\n".join(lines) + "\n")
    return config


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=5, trust_env=False)

    def query(self, promql: str) -> dict[str, float]:
        """An instant query: each series' value, by its labels written ``k=v,...``."""
        response = self.http.get("/api/v1/query", params={"query": promql})
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return {_labels(r["metric"]): float(r["value"][1]) for r in body["data"]["result"]}

    def value(self, promql: str) -> float | None:
        """The value of a query that yields at most one series (None: no series)."""
        results = self.query(promql)
        assert len(results) <= 1, results
        return next(iter(results.values()), None)

    def wait_for(self, promql: str, expected: float, timeout: float = 30) -> None:
        """Until a scrape shows ``promql`` at ``expected``: the condition, polled, not a sleep."""
        deadline = time.monotonic() + timeout
        seen: float | None = None
        while time.monotonic() < deadline:
            seen = self.value(promql)
            if seen == expected:
                return
            time.sleep(0.2)
        raise AssertionError(f"{promql} was {seen}, not {expected}, after {timeout:.0f} s")

    def wait_rules_evaluated(self, timeout: float = 30) -> list[dict[str, Any]]:
        """Every loaded rule, once each has been evaluated; failing on any that errs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            groups = self.http.get("/api/v1/rules").json()["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            assert all(r["health"] != "err" for r in rules), rules
            if rules and all(r["health"] == "ok" for r in rules):
                return rules
            time.sleep(0.2)
        raise AssertionError("the rules were not evaluated in time")

    def wait_scraped_after(self, when: float, timeout: float = 30) -> None:
        """Until every target has been scraped since ``when`` (unix seconds): then a query
        sees whatever every process had recorded by then."""
        self.wait_for(f"min(timestamp(up)) > bool {when}", 1, timeout)


def _labels(metric: dict[str, str]) -> str:
    return ",".join(
        f"{k}={v}" for k, v in sorted(metric.items()) if k not in ("__name__", "instance", "job")
    )


@contextmanager
def running_prometheus(config: Path, tmp: Path) -> Iterator[Prometheus]:
    port = free_port()
    log = tmp / "prometheus.log"
    command = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    with log.open("ab") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=sink)
    try:
        prometheus = Prometheus(f"http://127.0.0.1:{port}")
        _wait_ready(prometheus, proc, log)
        try:
            yield prometheus
        finally:
            prometheus.http.close()
    finally:
        stop(proc)


def _wait_ready(prometheus: Prometheus, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
        try:
            if prometheus.http.get("/-/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("prometheus did not become ready")


def wait_scraped(prometheus: Prometheus, timeout: float = 30) -> None:
    """Until every target has been scraped successfully at least once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = prometheus.http.get("/api/v1/targets").json()["data"]["activeTargets"]
        if targets and all(t["health"] == "up" for t in targets):
            return
        time.sleep(0.2)
    raise AssertionError(f"targets not up: {targets}")
