"""The schema. Timestamps are unix seconds as floats: the wire speaks unix seconds, and the
same arithmetic (``lease_expires_at < now``) then works unchanged on SQLite and PostgreSQL."""

from __future__ import annotations

from functools import cache
from typing import Any, TypedDict, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Insert,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Update,
    bindparam,
    insert,
    inspect,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hyperlocal.store.prepared import prepared

__all__ = [
    "ApiKey",
    "Base",
    "IdempotencyRecord",
    "Job",
    "LedgerEntry",
    "WebhookAttempt",
    "WebhookDelivery",
    "insert_stmt",
    "set_columns",
    "table",
]

JsonDict = dict[str, Any]


class Base(DeclarativeBase):
    type_annotation_map = {JsonDict: JSON}  # noqa: RUF012


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("credits >= 0", name="ck_api_keys_credits_nonnegative"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_limit: Mapped[int] = mapped_column(Integer)
    max_running_jobs: Mapped[int] = mapped_column(Integer)
    webhook_secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # 0 normal, 1 high, 2 highest (0009): copied onto each job the key submits.
    priority: Mapped[int] = mapped_column(Integer, server_default="0")


class LedgerEntry(Base):
    """Append-only. ``amount`` is signed: grants and refunds add, charges subtract.

    The unique (job_id, kind) index is the backstop for "exactly one charge and at most one
    refund per job", whatever the worker does twice.
    """

    __tablename__ = "ledger"
    __table_args__ = (
        UniqueConstraint("job_id", "kind", name="uq_ledger_job_kind"),
        Index("ix_ledger_key_created", "key_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_key_created", "key_id", "created_at"),
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_key_status", "key_id", "status"),
        Index("ix_jobs_expiry", "expired_at", "expires_at"),
        Index("ix_jobs_inputs_expire", "inputs_expire_at"),
        Index("ix_jobs_result_id", "result_id"),
        # The order in which queued jobs start (0009): higher priority first, then oldest.
        Index("ix_jobs_queue_order", "status", text("priority DESC"), "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    model: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[JsonDict] = mapped_column(JSON)
    inputs: Mapped[JsonDict] = mapped_column(JSON, default=dict)  # field -> stored input keys
    credits: Mapped[int] = mapped_column(BigInteger)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    output_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_urls: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Storage keys of the outputs: their URLs are made again on each read (0004).
    output_keys: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[JsonDict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Set when the key cancels the job while it runs: its worker stops the engine (0005).
    cancel_requested_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    timeout_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Retention (0006): the seconds its outputs are kept after it ends (None: forever); when
    # they expire, and when the sweep deleted them; when its inputs are due for deletion
    # (cleared once they are deleted).
    retention_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    inputs_expire_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Provider routes (0007): every attempt of the run, the provider's reported cost, and the
    # job's place in the provider's queue while it waits there.
    route_attempts: Mapped[list[JsonDict] | None] = mapped_column(JSON, nullable=True)
    provider_cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    provider_queue_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The W3C traceparent of the span that submitted the job, with tracing on (0008): its
    # run's span is that span's child, in whichever process runs it.
    traceparent: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Scheduling (0009): the key's priority at submit, and when the job fails if it has not
    # started by then (the submit's ``X-Start-Deadline``; None: it waits as long as it takes).
    # Only a server default: an INSERT that leaves it out (a chat's) stays one prepared
    # statement (``store.prepared``).
    priority: Mapped[int] = mapped_column(Integer, server_default="0")
    start_deadline_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LedgerRow(TypedDict):
    """A new ledger line's column values: the request path appends without building an ORM
    object (SQLAlchemy's instrumented constructor costs more than SQLite's INSERT)."""

    key_id: str
    kind: str
    amount: int
    balance_after: int
    job_id: str | None
    note: str
    created_at: float


class ChatJobRow(TypedDict):
    """A chat's ``jobs`` row as it is charged (``core.chat``), by column name; the columns
    left out take their defaults. Inserted without an ORM object, as ``LedgerRow``."""

    id: str
    key_id: str
    model: str
    category: str
    status: str
    params: JsonDict
    inputs: JsonDict
    credits: int
    timeout_s: float
    progress: float
    attempts: int
    created_at: float
    started_at: float
    lease_owner: str
    lease_expires_at: float


class IdempotencyRecord(Base):
    __tablename__ = "idempotency"
    __table_args__ = (UniqueConstraint("key_id", "idem_key", name="uq_idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    idem_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[float] = mapped_column(Float)


class WebhookDelivery(Base):
    """The outbox: one row per job event to deliver, written in the job's terminal transaction.

    ``message_id`` is the Standard Webhooks ``webhook-id``; it never changes across retries.
    ``payload`` holds the exact bytes that are signed and sent.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(60), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed, gone
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The W3C traceparent of the span that ended the job, with tracing on (0008): each
    # attempt's span links to it.
    traceparent: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


def table(model: type[Base]) -> Table:
    """``model``'s table, for Core statements (typed: ``__table__`` is only a FromClause)."""
    return cast(Table, model.__table__)


@cache
def insert_stmt(model: type[Base]) -> Insert:
    """A Core INSERT into ``model``'s table, built once so that its compiled form is cached
    (and prepared: see ``store.prepared``)."""
    return prepared(insert(table(model)))


@cache
def update_by_id_stmt(model: type[Base], columns: tuple[str, ...]) -> Update:
    """A Core ``UPDATE <table> SET <columns> WHERE id``, built once per set of columns (bind
    parameters ``p_id``, and ``v_<column>`` for each value) and prepared like ``insert_stmt``."""
    columns_ = table(model).c
    sets = {name: bindparam(f"v_{name}", type_=columns_[name].type) for name in columns}
    return prepared(update(table(model)).where(columns_.id == bindparam("p_id")).values(**sets))


def set_columns(obj: Base) -> dict[str, Any]:
    """The column values set on ``obj``, by column name; unset columns take their defaults."""
    state = obj.__dict__
    return {name: state[key] for key, name in _columns(type(obj)) if key in state}


@cache
def _columns(model: type[Base]) -> tuple[tuple[str, str], ...]:
    """(attribute, column name) for each of ``model``'s columns."""
    return tuple((attr.key, attr.columns[0].name) for attr in inspect(model).column_attrs)
