"""jobs.route_attempts, provider_cost_usd, provider_queue_position

A job whose model is served through a provider (fal, Replicate, ...) records every attempt
of its run: the route, the provider's request id, the outcome and its latency
(``route_attempts``, a JSON list), what the provider reported it cost (``provider_cost_usd``),
and, while it waits in the provider's queue, its place there (``provider_queue_position``,
shown as the job's ``queuePosition``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("route_attempts", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("provider_cost_usd", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("provider_queue_position", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "provider_queue_position")
    op.drop_column("jobs", "provider_cost_usd")
    op.drop_column("jobs", "route_attempts")
