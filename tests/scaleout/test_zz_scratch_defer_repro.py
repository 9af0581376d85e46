"""SCRATCH (to be deleted): deferred jobs held by a SIGKILLed worker."""
from __future__ import annotations
import asyncio, time
from pathlib import Path
import httpx, pytest
from asgi_lifespan import LifespanManager
from hyperlocal.app import create_app
from hyperlocal.store.db import Database
from tests.conftest import auth
from tests.scaleout import _audit
from tests.scaleout._processes import TEST_WORKER, eventually, spawned
from tests.scaleout.conftest import ScaleOut, new_key
from tests.support import TEST_ENGINES

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

async def test_repro(scale_out: ScaleOut, database: Database, tmp_path: Path) -> None:
    lease = {"job_lease_seconds": 2.0}
    key = await new_key(database, scale_out.scope, max_running=1)
    app = create_app(scale_out.settings(**lease), engines=TEST_ENGINES)
    body = {"model": "scaleout-slow-t2i", "prompt": "x", "seconds": 4}
    headers = {**auth(key), "Prefer": "respond-async"}
    ids = []
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        for _ in range(3):
            r = await client.post("/v1/images/generate", json=body, headers=headers)
            assert r.status_code == 202
            ids.append(r.json()["jobId"])
    logs, env = tmp_path / "logs", scale_out.env(**lease, log_level="INFO")
    with spawned("doomed", [*TEST_WORKER, "--concurrency", "3"], env, logs) as doomed:
        async def one_running() -> bool:
            rows = await _audit.jobs(database, ids)
            return sum(r.status == "running" for r in rows.values()) == 1
        await eventually(one_running, 30, "one running")
        await asyncio.sleep(1.5)  # scratch only: let the other two be deferred
        doomed.kill()
    print(doomed.text()[-3000:])
    with spawned("rescuer", [*TEST_WORKER, "--concurrency", "3"], env, logs) as rescuer:
        t0 = time.monotonic()
        async def done() -> bool:
            return await _audit.count_terminal(database, ids) == 3
        try:
            await eventually(done, 40, "all three done")
        finally:
            rows = await _audit.jobs(database, ids)
            print("after", time.monotonic() - t0, {i: (r.status, r.attempts) for i, r in rows.items()})
            keys = list(scale_out.scope.client.scan_iter(match=f"{scale_out.scope.namespace}*"))
            print("redis keys", keys)
            for k in keys:
                t = scale_out.scope.client.type(k)
                if t == b"hash": print(k, scale_out.scope.client.hlen(k))
                if t == b"list": print(k, scale_out.scope.client.llen(k))
                if t == b"zset": print(k, scale_out.scope.client.zcard(k))
            print(rescuer.text()[-3000:])
