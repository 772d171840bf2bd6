"""A measurement row carries its recording's SigMF metadata when it is small.

``measurements.sigmf_meta`` (JSONB, nullable): the document written to the row's
``meta_url``, for recordings whose metadata is at most
``acquisition.stored.META_IN_ROW_MAX_BYTES``. The localization reads it from the row and
fetches only the samples (one GET per recording instead of two, issue 13); rows written
before this revision, and long recordings, keep NULL and are read from the object store
as before. The object stays the recording's portable description (docs/decisions.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "measurements",
        sa.Column("sigmf_meta", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("measurements", "sigmf_meta")
