"""Races across real processes on PostgreSQL: the credit race and a crash mid-submit."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from hyperlocal.store.tables import Job, LedgerEntry
from tests.conftest import SettingsFactory
from tests.processes import server_env, server_process
from tests.support import free_port

PRICE = 4  # gemini-3-1-flash-t2i


async def _fire(ports: list[int], key: str, count: int) -> list[httpx.Response | Exception]:
    body = {"prompt": "race", "size": None}
    headers = {"Authorization": f"Bearer {key}", "Prefer": "respond-async"}
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"http://127.0.0.1:{ports[i % len(ports)]}/v1/images/generate",
                    json={"prompt": body["prompt"]},
                    headers=headers,
                )
                for i in range(count)
            ),
            return_exceptions=True,
        )


async def _issue(settings: Settings, credits: int) -> keys.IssuedKey:
    db = await open_database(settings)
    try:
        return await keys.create_key(db, KeySpec("race", credits, 100_000, 1000))
    finally:
        await db.aclose()


async def _accounting(settings: Settings, key_id: str) -> tuple[int, int, int, int]:
    """(balance, ledger sum, charges, jobs) for the key."""
    db = await open_database(settings)
    try:
        async with db.read() as session:
            balance = await session.scalar(
                select(func.sum(LedgerEntry.amount)).where(LedgerEntry.key_id == key_id)
            )
            from hyperlocal.store import ledger as store

            column = await store.balance(session, key_id)
            charges = await session.scalar(
                select(func.count()).where(
                    LedgerEntry.key_id == key_id, LedgerEntry.kind == "charge"
                )
            )
            jobs = await session.scalar(
                select(func.count()).select_from(Job).where(Job.key_id == key_id)
            )
        return column, int(balance or 0), int(charges or 0), int(jobs or 0)
    finally:
        await db.aclose()


@pytest.mark.postgres
@pytest.mark.slow
async def test_two_servers_exactly_k_accepted(
    make_settings: SettingsFactory, postgres_url: str, tmp_path: Path
) -> None:
    affordable = 20
    settings = make_settings(database_url=postgres_url)
    issued = await _issue(settings, PRICE * affordable)
    env = server_env(settings.data_dir, HYPERLOCAL_DATABASE_URL=postgres_url)
    ports = [free_port(), free_port()]
    with (
        server_process(ports[0], env, tmp_path / "a.log"),
        server_process(ports[1], env, tmp_path / "b.log"),
    ):
        responses = await _fire(ports, issued.key, 10 * affordable)
    codes = sorted(r.status_code for r in responses if isinstance(r, httpx.Response))
    assert len(codes) == 10 * affordable, [r for r in responses if isinstance(r, Exception)]
    assert codes.count(202) == affordable
    assert codes.count(402) == 9 * affordable
    balance, ledger_sum, charges, jobs = await _accounting(settings, issued.info.id)
    assert (balance, ledger_sum, charges, jobs) == (0, 0, affordable, affordable)


async def _until_jobs(settings: Settings, key_id: str, at_least: int) -> None:
    for _ in range(600):
        if (await _accounting(settings, key_id))[3] >= at_least:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no submit landed in time")


@pytest.mark.postgres
@pytest.mark.slow
async def test_kill_api_mid_submit_leaves_no_orphans(
    make_settings: SettingsFactory, postgres_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url=postgres_url)
    issued = await _issue(settings, 100_000)
    env = server_env(settings.data_dir, HYPERLOCAL_DATABASE_URL=postgres_url)
    port = free_port()
    with server_process(port, env, tmp_path / "a.log") as proc:
        flood = asyncio.create_task(_fire([port], issued.key, 300))
        await _until_jobs(settings, issued.info.id, at_least=10)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        await flood
    db = await open_database(settings)
    try:
        async with db.read() as session:
            job_ids = set(
                (await session.scalars(select(Job.id).where(Job.key_id == issued.info.id))).all()
            )
            charged = set(
                (
                    await session.scalars(
                        select(LedgerEntry.job_id).where(LedgerEntry.kind == "charge")
                    )
                ).all()
            )
    finally:
        await db.aclose()
    assert job_ids, "the kill came before any submit landed"
    assert charged == job_ids  # no charge without a job, no job without a charge
    balance, ledger_sum, charges, jobs = await _accounting(settings, issued.info.id)
    assert balance == ledger_sum and charges == jobs
