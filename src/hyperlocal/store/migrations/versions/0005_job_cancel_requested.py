"""jobs.cancel_requested_at

Cancelling a running job asks its worker to stop the engine; the job stays ``running`` (and
keeps its worker slot and its place under the key's running cap) until the work has stopped.
The request is kept on the row, so that a worker in another process, or one that missed the
event, finds it at its next lease renewal, and so that the job can never then complete.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("cancel_requested_at", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "cancel_requested_at")
