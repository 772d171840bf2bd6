"""Imported recordings: acquisitions made of uploaded files, and the stations they bring.

* ``acquisitions.source``: ``live`` (recorded from the receivers) or ``import``
  (kiwirecorder / SigMF files uploaded); an import may be longer than a live
  recording (up to a day), so the duration check depends on it.
* ``websdr_stations.source``: ``registry`` (seeded from the registry file) or
  ``imported`` (created, inactive, for the receiver of an imported recording).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_DURATION = "duration_seconds > 0 AND duration_seconds <= 300"
ANY_DURATION = (
    "duration_seconds > 0 AND (duration_seconds <= 300 "
    "OR (source = 'import' AND duration_seconds <= 86400))"
)


def upgrade() -> None:
    op.add_column(
        "acquisitions", sa.Column("source", sa.Text(), server_default="live", nullable=False)
    )
    op.create_check_constraint("source", "acquisitions", "source IN ('live', 'import')")
    op.drop_constraint(op.f("ck_acquisitions_duration"), "acquisitions", type_="check")
    op.create_check_constraint("duration", "acquisitions", ANY_DURATION)
    op.add_column(
        "websdr_stations",
        sa.Column("source", sa.Text(), server_default="registry", nullable=False),
    )
    op.create_check_constraint("source", "websdr_stations", "source IN ('registry', 'imported')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_websdr_stations_source"), "websdr_stations", type_="check")
    op.drop_column("websdr_stations", "source")
    op.execute("DELETE FROM acquisitions WHERE source = 'import'")
    op.drop_constraint(op.f("ck_acquisitions_duration"), "acquisitions", type_="check")
    op.create_check_constraint("duration", "acquisitions", LIVE_DURATION)
    op.drop_constraint(op.f("ck_acquisitions_source"), "acquisitions", type_="check")
    op.drop_column("acquisitions", "source")
