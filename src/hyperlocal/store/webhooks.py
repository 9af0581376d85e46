"""Webhook outbox queries. None of these commit."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.store.prepared import execute
from hyperlocal.store.tables import (
    WebhookAttempt,
    WebhookDelivery,
    insert_stmt,
    set_columns,
    update_by_id_stmt,
)

__all__ = [
    "add_attempt",
    "attempts_for_job",
    "claim_due",
    "deliveries_for_job",
    "insert",
    "reschedule",
    "update_delivery",
]

PENDING = "pending"


async def insert(session: AsyncSession, delivery: WebhookDelivery) -> None:
    """A Core INSERT, prepared: a job's terminal transaction stays off the ORM's slow path
    (``store.prepared``)."""
    await execute(session, insert_stmt(WebhookDelivery), [set_columns(delivery)])


async def claim_due(
    session: AsyncSession,
    now: float,
    limit: int,
    hold_s: float,
    skip_prefixes: Sequence[str] = (),
) -> Sequence[WebhookDelivery]:
    """Pending deliveries that are due, pushed ``hold_s`` into the future so no other
    dispatcher takes them while this one sends (SKIP LOCKED on PostgreSQL). Deliveries to
    URLs beginning with one of ``skip_prefixes`` (``scheme://host:port/``) are left for later."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
        .where(*(~WebhookDelivery.url.startswith(prefix) for prefix in skip_prefixes))
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = (await session.scalars(stmt)).all()
    for row in rows:
        row.next_attempt_at = now + hold_s
    await session.flush()
    return rows


async def update_delivery(session: AsyncSession, delivery_id: str, **values: object) -> None:
    params = {"p_id": delivery_id} | {f"v_{name}": value for name, value in values.items()}
    await execute(session, update_by_id_stmt(WebhookDelivery, tuple(values)), params)


async def add_attempt(session: AsyncSession, attempt: WebhookAttempt) -> None:
    await execute(session, insert_stmt(WebhookAttempt), [set_columns(attempt)])


async def deliveries_for_job(session: AsyncSession, job_id: str) -> Sequence[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
    return (await session.scalars(stmt.order_by(WebhookDelivery.created_at))).all()


async def attempts_for_job(session: AsyncSession, job_id: str) -> Sequence[WebhookAttempt]:
    stmt = (
        select(WebhookAttempt)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookAttempt.id)
    )
    return (await session.scalars(stmt)).all()


async def reschedule(session: AsyncSession, job_id: str, now: float) -> int:
    stmt = (
        update(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .values(status=PENDING, next_attempt_at=now, attempts=0)
    )
    return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
