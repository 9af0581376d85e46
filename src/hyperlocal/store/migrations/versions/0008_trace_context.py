"""jobs.traceparent, webhook_deliveries.traceparent

With tracing on (``hyperlocal.tracing``), one trace follows a job from its submit to its end,
whichever process runs it and however long it waits: the job keeps the W3C ``traceparent`` of
the span that submitted it, and its run's span is that span's child. A webhook delivery is a
trace of its own, linked to the span that ended the job, whose ``traceparent`` the outbox row
keeps. Null with tracing off, and for rows written before.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("jobs", "webhook_deliveries")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("traceparent", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_column(table, "traceparent")
