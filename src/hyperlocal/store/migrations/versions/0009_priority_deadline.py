"""api_keys.priority; jobs.priority, start_deadline_at; the queue-order index

Scheduling (spec §12). A key has a priority, 0 (normal), 1 (high) or 2 (highest), copied onto
each job it submits, so that the next job to start is one indexed query: queued jobs by
priority, highest first, then oldest first (``ix_jobs_queue_order``). A submit may carry
``X-Start-Deadline``: the job fails, refunded, if it has not started by ``start_deadline_at``.

Existing keys and jobs take priority 0 and no deadline.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_PRIORITY_TABLES = ("api_keys", "jobs")


def upgrade() -> None:
    for table in _PRIORITY_TABLES:
        column = sa.Column("priority", sa.Integer(), nullable=False, server_default="0")
        op.add_column(table, column)
    op.add_column("jobs", sa.Column("start_deadline_at", sa.Float(), nullable=True))
    op.create_index(
        "ix_jobs_queue_order", "jobs", ["status", sa.text("priority DESC"), "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_queue_order", table_name="jobs")
    op.drop_column("jobs", "start_deadline_at")
    for table in reversed(_PRIORITY_TABLES):
        op.drop_column(table, "priority")
