"""jobs by key and status

The running-jobs cap counts a key's running jobs on every claim. With only the
(key_id, created_at) index that count walked all of the key's jobs, which grows without end.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_key_status", "jobs", ["key_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_key_status", table_name="jobs")
