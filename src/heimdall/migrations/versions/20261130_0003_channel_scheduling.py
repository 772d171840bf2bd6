"""Acquisition at scale: receiver channels, claims and deadlines, idempotency keys, outbox.

* ``websdr_stations.channels``: how many channels of the receiver Heimdall may hold.
* ``channel_leases``: one row per channel held by an acquisition, with an expiry.
* ``acquisitions``: deadline, claim (holder, claimed_until), cleanup flag and the
  client's ``Idempotency-Key`` (unique when given).
* ``task_outbox``: tasks decided in a transaction, published after its commit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "websdr_stations",
        sa.Column("channels", sa.Integer(), server_default="4", nullable=False),
    )
    op.create_check_constraint("channels", "websdr_stations", "channels >= 1")
    op.add_column("acquisitions", sa.Column("deadline_at", sa.DateTime(timezone=True)))
    op.add_column("acquisitions", sa.Column("holder", sa.Text()))
    op.add_column("acquisitions", sa.Column("claimed_until", sa.DateTime(timezone=True)))
    op.add_column(
        "acquisitions",
        sa.Column("cleanup_pending", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("acquisitions", sa.Column("idempotency_key", sa.Text()))
    op.create_index(
        "uq_acquisitions_idempotency_key", "acquisitions", ["idempotency_key"], unique=True
    )
    op.create_table(
        "channel_leases",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["acquisitions.task_id"],
            name=op.f("fk_channel_leases_task_id_acquisitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["websdr_stations.id"],
            name=op.f("fk_channel_leases_station_id_websdr_stations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "station_id", name=op.f("pk_channel_leases")),
    )
    op.create_index("ix_channel_leases_station_id", "channel_leases", ["station_id"])
    op.create_table(
        "task_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_name", sa.Text(), nullable=False),
        sa.Column("args", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_outbox")),
    )


def downgrade() -> None:
    op.drop_table("task_outbox")
    op.drop_index("ix_channel_leases_station_id", table_name="channel_leases")
    op.drop_table("channel_leases")
    op.drop_index("uq_acquisitions_idempotency_key", table_name="acquisitions")
    for column in ("idempotency_key", "cleanup_pending", "claimed_until", "holder", "deadline_at"):
        op.drop_column("acquisitions", column)
    op.drop_constraint("ck_websdr_stations_channels", "websdr_stations", type_="check")
    op.drop_column("websdr_stations", "channels")
