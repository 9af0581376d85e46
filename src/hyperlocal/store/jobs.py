"""Job queries. None of these commit. State changes are conditional UPDATEs, so a job moves
out of a state at most once even when two workers (or a worker and a canceller) race."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Row, TextClause, Update, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hyperlocal.store import keys, ledger
from hyperlocal.store.db import Database, on_sqlite
from hyperlocal.store.prepared import execute, prepared
from hyperlocal.store.tables import ChatJobRow, Job, insert_stmt, set_columns, table

__all__ = [
    "below_running_cap",
    "claim",
    "count_active_for_models",
    "count_running_for_key",
    "create_paid",
    "existing_ids",
    "expired_leases",
    "get",
    "insert",
    "insert_chat",
    "list_for_key",
    "missed_start_deadlines",
    "move",
    "queue_position",
    "queued",
    "queued_ids",
    "read",
    "read_by_result",
    "release",
    "renew_lease",
    "request_cancel",
    "requeue_expired",
    "set_progress",
    "set_provider_queue_position",
]

QUEUED, RUNNING = "queued", "running"
ACTIVE = (QUEUED, RUNNING)

# State changes and counts are Core statements on the table: they skip the ORM's per-call work
# (synchronising the session), which cost more than SQLite itself on the request path.
_jobs = table(Job)
_c = _jobs.c
_BY_ID = select(_jobs).where(_c.id == bindparam("job_id"))
_BY_RESULT = select(_jobs).where(_c.result_id == bindparam("result_id"))
_COUNT_RUNNING = prepared(
    select(func.count()).where(_c.key_id == bindparam("key_id"), _c.status == RUNNING)
)
# The order in which queued jobs start: higher priority first, then oldest first (served by
# the index ``ix_jobs_queue_order``).
_START_ORDER = (_c.priority.desc(), _c.created_at)


async def insert(session: AsyncSession, job: Job) -> None:
    """Insert the job's row as one Core statement (the ORM's flush costs several times more on
    this hot path). ``job`` stays detached: later reads return fresh rows."""
    await execute(session, insert_stmt(Job), [set_columns(job)])


async def insert_chat(session: AsyncSession, row: ChatJobRow) -> None:
    """Insert a chat's row, given as its column values (see ``ChatJobRow``)."""
    await execute(session, insert_stmt(Job), [row])


async def create_paid(db: Database, job: Job, now: float) -> int | None:
    """Charge the job's key ``job.credits``, with its ledger line, and insert the job, as a
    unit of work of its own: unlike the other store functions, this one commits. The new
    balance, or None (nothing written) if the balance does not cover the price.

    On PostgreSQL the three are one statement, atomic by itself, run in autocommit: concurrent
    submits of one key wait on its row while PostgreSQL executes that statement only, not for
    a transaction's round trips. On SQLite, whose writer holds the whole database anyway, they
    are one transaction."""
    if db.is_sqlite:
        return await _create_paid_in_transaction(db, job, now)
    async with db.single_statement() as conn:
        return await _insert_paid(conn, job, now)


class _NotCovered(Exception):
    """The balance did not cover the price: the job's row is rolled back."""


async def _create_paid_in_transaction(db: Database, job: Job, now: float) -> int | None:
    try:
        async with db.transaction() as session:
            await insert(session, job)
            balance = await ledger.charge(session, job.key_id, job.credits, job.id, now)
            if balance is None:
                raise _NotCovered
    except _NotCovered:
        return None
    return balance


async def _insert_paid(conn: AsyncConnection, job: Job, now: float) -> int | None:
    """PostgreSQL: ``create_paid``'s one statement (the debit and the ledger line are
    ``ledger.CHARGE_CTES``)."""
    values = set_columns(job)
    params = {f"v_{name}": value for name, value in values.items()}
    params |= {"p_key_id": job.key_id, "p_amount": job.credits, "p_job_id": job.id, "p_now": now}
    result = await conn.execute(_paid_insert(tuple(values)), params)
    balance = result.scalar_one_or_none()
    return None if balance is None else int(balance)


@cache
def _paid_insert(columns: tuple[str, ...]) -> TextClause:
    names = ", ".join(columns)
    binds = ", ".join(f":v_{name}" for name in columns)
    sql = f"""
        WITH {ledger.CHARGE_CTES}, created AS (
            INSERT INTO jobs ({names}) SELECT {binds} FROM debited
        )
        SELECT credits FROM debited
    """
    typed = [bindparam(f"v_{name}", type_=_c[name].type) for name in columns]
    return text(sql).bindparams(*typed)


async def get(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id, populate_existing=True)


async def read(session: AsyncSession, job_id: str) -> Row[Any] | None:
    """The job's row as plain values (a Core read: no ORM identity map), for showing it."""
    return (await session.execute(_BY_ID, {"job_id": job_id})).one_or_none()


async def existing_ids(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` name a job."""
    return set(await session.scalars(select(_c.id).where(_c.id.in_(ids))))


async def read_by_result(session: AsyncSession, result_id: str) -> Row[Any] | None:
    """The job whose image result is ``result_id`` (``res_...``), as ``read`` shows it."""
    return (await session.execute(_BY_RESULT, {"result_id": result_id})).first()


async def list_for_key(
    session: AsyncSession, key_id: str, *, limit: int, before: tuple[float, str] | None
) -> Sequence[Job]:
    stmt = select(Job).where(Job.key_id == key_id)
    if before is not None:
        created, job_id = before
        stmt = stmt.where(
            (Job.created_at < created) | ((Job.created_at == created) & (Job.id < job_id))
        )
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


_CLAIM = prepared(
    update(_jobs)
    .where(_c.id == bindparam("p_job_id"), _c.status == QUEUED)
    .values(
        status=RUNNING,
        lease_owner=bindparam("p_owner"),
        lease_expires_at=bindparam("p_until"),
        attempts=_c.attempts + 1,
        started_at=func.coalesce(_c.started_at, bindparam("p_now")),
    )
    .returning(*_c)
)


async def claim(
    session: AsyncSession, job_id: str, owner: str, now: float, lease_s: float
) -> Job | None:
    """Take a queued job for ``owner``; the claimed job (detached), or None if it was not
    queued."""
    params = {"p_job_id": job_id, "p_owner": owner, "p_until": now + lease_s, "p_now": now}
    row = (await execute(session, _CLAIM, params)).one_or_none()
    return None if row is None else Job(**row._asdict())


_HELD = (
    _c.id == bindparam("p_job_id"),
    _c.status == RUNNING,
    _c.lease_owner == bindparam("p_owner"),
)
_RENEW = prepared(
    update(_jobs)
    .where(*_HELD)
    .values(lease_expires_at=bindparam("p_until"))
    .returning(_c.cancel_requested_at)
)
_PROGRESS = prepared(update(_jobs).where(*_HELD).values(progress=bindparam("p_progress")))
_QUEUE_PLACE = prepared(
    update(_jobs).where(*_HELD).values(provider_queue_position=bindparam("p_place"))
)
_REQUEST_CANCEL = prepared(
    update(_jobs)
    .where(_c.id == bindparam("p_job_id"), _c.status == RUNNING, _c.cancel_requested_at.is_(None))
    .values(cancel_requested_at=bindparam("p_now"))
)
_RELEASE = prepared(
    update(_jobs)
    .where(*_HELD)
    .values(status=QUEUED, lease_owner=None, lease_expires_at=None, attempts=_c.attempts - 1)
)


async def renew_lease(
    session: AsyncSession, job_id: str, owner: str, until: float
) -> tuple[bool, bool]:
    """Extend the lease that ``owner`` holds: (still held, cancel requested)."""
    params = {"p_job_id": job_id, "p_owner": owner, "p_until": until}
    row = (await execute(session, _RENEW, params)).one_or_none()
    return (False, False) if row is None else (True, row[0] is not None)


async def set_progress(session: AsyncSession, job_id: str, owner: str, progress: float) -> None:
    params = {"p_job_id": job_id, "p_owner": owner, "p_progress": progress}
    await execute(session, _PROGRESS, params)


async def set_provider_queue_position(
    session: AsyncSession, job_id: str, owner: str, place: int | None
) -> None:
    params = {"p_job_id": job_id, "p_owner": owner, "p_place": place}
    await execute(session, _QUEUE_PLACE, params)


async def request_cancel(session: AsyncSession, job_id: str, now: float) -> bool:
    """Mark a running job for its worker to stop; False if it was not running or is marked."""
    return _changed(await execute(session, _REQUEST_CANCEL, {"p_job_id": job_id, "p_now": now}))


async def release(session: AsyncSession, job_id: str, owner: str) -> bool:
    """Give a running job that ``owner`` holds back to the queue, the attempt not counted."""
    return _changed(await execute(session, _RELEASE, {"p_job_id": job_id, "p_owner": owner}))


async def move(
    session: AsyncSession,
    job_id: str,
    from_states: Sequence[str],
    values: dict[str, Any],
    *,
    owner: str | None = None,
    uncancelled: bool = False,
    unstarted: bool = False,
) -> bool:
    """Move a job out of any of ``from_states``, clearing its lease: only while ``owner`` (if
    given) holds it, (``uncancelled``) only if no cancel was requested, and (``unstarted``)
    only if it never started. Whether it moved.
    ``core.lifecycle`` is the only caller: it decides which moves are allowed."""
    params: dict[str, Any] = {"p_job_id": job_id}
    if owner is not None:
        params["p_owner"] = owner
    state: str | None = from_states[0] if len(from_states) == 1 else None
    if state is None:
        params["p_states"] = list(from_states)
    stmt = _leave_state(tuple(values), state, owner is not None, uncancelled, unstarted)
    return _changed(await execute(session, stmt, params | _set_params(values)))


@cache
def _leave_state(
    columns: tuple[str, ...], state: str | None, by_owner: bool, uncancelled: bool, unstarted: bool
) -> Update:
    """``UPDATE jobs SET <columns>, lease cleared WHERE id AND status = state [AND owner]
    [AND no cancel requested] [AND never started]``, or with ``status IN (...)`` when ``state``
    is None: built once per shape, with bind parameters (``p_*`` match, ``v_*`` set), so that
    its compiled form is cached and prepared (see ``store.prepared``)."""
    where = [_c.id == bindparam("p_job_id")]
    if state is None:
        where.append(_c.status.in_(bindparam("p_states", expanding=True)))
    else:
        where.append(_c.status == state)
    if by_owner:
        where.append(_c.lease_owner == bindparam("p_owner"))
    if uncancelled:
        where.append(_c.cancel_requested_at.is_(None))
    if unstarted:
        where.append(_c.started_at.is_(None))
    sets = {name: bindparam(f"v_{name}", type_=_c[name].type) for name in columns}
    stmt = update(_jobs).where(*where).values(lease_owner=None, lease_expires_at=None, **sets)
    return prepared(stmt)


def _set_params(values: dict[str, Any]) -> dict[str, Any]:
    return {f"v_{name}": value for name, value in values.items()}


async def expired_leases(session: AsyncSession, now: float) -> Sequence[Job]:
    stmt = select(Job).where(Job.status == RUNNING, Job.lease_expires_at < now)
    return (await session.scalars(stmt)).all()


async def requeue_expired(session: AsyncSession, job_id: str, now: float) -> bool:
    stmt = (
        update(_jobs)
        .where(_c.id == job_id, _c.status == RUNNING, _c.lease_expires_at < now)
        .values(status=QUEUED, lease_owner=None, lease_expires_at=None)
    )
    return _changed(await session.execute(stmt))


async def queued(
    session: AsyncSession, limit: int = 10_000, models: Sequence[str] | None = None
) -> list[tuple[str, int]]:
    """Queued jobs in the order they should start (highest priority first, then oldest), as
    (id, priority); only of ``models``, if given."""
    stmt = select(_c.id, _c.priority).where(_c.status == QUEUED)
    if models is not None:
        stmt = stmt.where(_c.model.in_(models))
    rows = await session.execute(stmt.order_by(*_START_ORDER).limit(limit))
    return [(job_id, priority) for job_id, priority in rows]


async def queued_ids(
    session: AsyncSession, limit: int = 10_000, models: Sequence[str] | None = None
) -> list[str]:
    """``queued``'s ids alone."""
    return [job_id for job_id, _ in await queued(session, limit, models)]


async def missed_start_deadlines(session: AsyncSession, now: float, limit: int = 1000) -> list[str]:
    """Queued jobs that never started and whose start deadline is before ``now``."""
    stmt = (
        select(_c.id)
        .where(_c.status == QUEUED, _c.started_at.is_(None), _c.start_deadline_at < now)
        .order_by(_c.start_deadline_at)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def count_running_for_key(session: AsyncSession, key_id: str) -> int:
    return int((await execute(session, _COUNT_RUNNING, {"key_id": key_id})).scalar() or 0)


async def below_running_cap(session: AsyncSession, key_id: str, known_cap: int) -> bool:
    """Whether the key runs fewer jobs than its cap, for a claim in this transaction. Two
    claims of one key must not both take its last place: on PostgreSQL the cap is read with
    the key's row locked until the transaction ends, so that they count one at a time;
    SQLite's writer holds the whole database, so ``known_cap`` (as of authentication) will
    do."""
    cap = known_cap if on_sqlite(session) else await keys.running_cap(session, key_id)
    return await count_running_for_key(session, key_id) < cap


async def queue_position(session: AsyncSession, job: Job | Row[Any]) -> int:
    """How many queued jobs start before ``job``: those of a higher priority, and the older ones
    of its own."""
    ahead = (_c.priority > job.priority) | (
        (_c.priority == job.priority) & (_c.created_at < job.created_at)
    )
    stmt = select(func.count()).where(_c.status == QUEUED, ahead)
    return int(await session.scalar(stmt) or 0)


async def count_active_for_models(session: AsyncSession, models: Sequence[str]) -> int:
    stmt = select(func.count()).where(Job.status.in_(ACTIVE), Job.model.in_(models))
    return int(await session.scalar(stmt) or 0)


def _changed(result: Any) -> bool:
    """Whether an UPDATE matched a row (its conditions held)."""
    return bool(result.rowcount)
