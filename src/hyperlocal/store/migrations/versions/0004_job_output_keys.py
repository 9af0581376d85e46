"""jobs.output_keys

A job kept only its outputs' URLs, made when it finished: a presigned S3 URL expired with its
signature, and a changed public URL left old jobs pointing at the old one. The keys let each
read make the URL afresh. Jobs finished before this keep their stored URLs.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("output_keys", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "output_keys")
