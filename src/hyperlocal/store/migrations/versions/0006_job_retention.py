"""jobs.retention_s, expires_at, expired_at, inputs_expire_at

Outputs and inputs were kept forever, and an operator's disk filled up. A job now records the
retention it was submitted with (the server's, or a shorter one the request asked for; null:
forever), and when it ends, when its outputs expire and when its inputs are due for deletion.
The expiry sweep deletes the files, keeps the row, and marks it: ``expired_at`` for the outputs
(a fetch then answers 410), and ``inputs_expire_at`` cleared once the inputs are gone.

Jobs that ended before this have no expiry and are kept: the migration cannot know the
server's setting.

``result_id`` gets an index: a fetch of a missing output finds its job by the file's name.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = ("retention_s", "expires_at", "expired_at", "inputs_expire_at")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("jobs", sa.Column(name, sa.Float(), nullable=True))
    op.create_index("ix_jobs_expiry", "jobs", ["expired_at", "expires_at"])
    op.create_index("ix_jobs_inputs_expire", "jobs", ["inputs_expire_at"])
    op.create_index("ix_jobs_result_id", "jobs", ["result_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_result_id", table_name="jobs")
    op.drop_index("ix_jobs_inputs_expire", table_name="jobs")
    op.drop_index("ix_jobs_expiry", table_name="jobs")
    for name in reversed(_COLUMNS):
        op.drop_column("jobs", name)
