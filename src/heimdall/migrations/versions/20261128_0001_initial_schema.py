"""Initial schema: every table of ARCHITECTURE section 4.

When the timescaledb extension is available, ``measurements`` becomes a
hypertable on ``timestamp``; otherwise it stays a plain table with the same
columns and indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 12:04:18.267133
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "known_sources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("altitude_m", sa.Float(), server_default="0", nullable=False),
        sa.Column("frequency_mhz", sa.Float(), nullable=True),
        sa.Column("eirp_dbm", sa.Float(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_known_sources_name")),
    )
    op.create_table(
        "training_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_sessions")),
    )
    op.create_table(
        "websdr_stations",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("protocol", sa.Text(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("altitude_m", sa.Float(), server_default="0", nullable=False),
        sa.Column("frequency_ranges_mhz", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_websdr_stations")),
    )
    op.create_table(
        "acquisitions",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("frequency_mhz", sa.Float(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("station_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column("progress", sa.Float(), server_default="0", nullable=False),
        sa.Column(
            "errors", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("approval", sa.Text(), server_default="pending", nullable=False),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("known_source_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "approval IN ('pending', 'approved', 'rejected')", name=op.f("ck_acquisitions_approval")
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'PROGRESS', 'SUCCESS', 'FAILED', 'CANCELLED')",
            name=op.f("ck_acquisitions_status"),
        ),
        sa.CheckConstraint(
            "duration_seconds > 0 AND duration_seconds <= 300",
            name=op.f("ck_acquisitions_duration"),
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 100", name=op.f("ck_acquisitions_progress")
        ),
        sa.ForeignKeyConstraint(
            ["known_source_id"],
            ["known_sources.id"],
            name=op.f("fk_acquisitions_known_source_id_known_sources"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_acquisitions")),
    )
    op.create_index("ix_acquisitions_created_at", "acquisitions", ["created_at"], unique=False)
    op.create_index("ix_acquisitions_status", "acquisitions", ["status"], unique=False)
    op.create_table(
        "models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), server_default="calibration", nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("artifact_url", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("training_session_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["training_session_id"],
            ["training_sessions.id"],
            name=op.f("fk_models_training_session_id_training_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_models_name_version")),
    )
    op.create_index(
        "ix_models_one_active",
        "models",
        ["name"],
        unique=True,
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "localizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("semi_major_m", sa.Float(), nullable=True),
        sa.Column("semi_minor_m", sa.Float(), nullable=True),
        sa.Column("orientation_deg", sa.Float(), nullable=True),
        sa.Column("gdop", sa.Float(), nullable=True),
        sa.Column("receivers_used", sa.Integer(), server_default="0", nullable=False),
        sa.Column("residuals", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("surface_geojson", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_localizations_model_id_models"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["acquisitions.task_id"],
            name=op.f("fk_localizations_task_id_acquisitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_localizations")),
        sa.UniqueConstraint("task_id", name=op.f("uq_localizations_task_id")),
    )
    op.create_table(
        "measurements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("websdr_id", sa.Text(), nullable=False),
        sa.Column("frequency_mhz", sa.Float(), nullable=False),
        sa.Column("snr", sa.Float(), nullable=False),
        sa.Column("frequency_offset", sa.Float(), nullable=False),
        sa.Column("power_dbm", sa.Float(), nullable=True),
        sa.Column("noise_floor_dbm", sa.Float(), nullable=True),
        sa.Column("signal_power_dbfs", sa.Float(), nullable=True),
        sa.Column("noise_floor_dbfs", sa.Float(), nullable=True),
        sa.Column("occupied_bandwidth_hz", sa.Float(), nullable=True),
        sa.Column("sample_rate_hz", sa.Float(), nullable=True),
        sa.Column("sample_count", sa.Integer(), nullable=True),
        sa.Column("gps_locked", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("data_url", sa.Text(), nullable=False),
        sa.Column("meta_url", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["acquisitions.task_id"],
            name=op.f("fk_measurements_task_id_acquisitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["websdr_id"],
            ["websdr_stations.id"],
            name=op.f("fk_measurements_websdr_id_websdr_stations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", "timestamp", name=op.f("pk_measurements")),
    )
    op.create_index(
        "ix_measurements_frequency_mhz_timestamp",
        "measurements",
        ["frequency_mhz", "timestamp"],
        unique=False,
    )
    op.create_index("ix_measurements_task_id", "measurements", ["task_id"], unique=False)
    op.create_index(
        "ix_measurements_websdr_id_timestamp",
        "measurements",
        ["websdr_id", "timestamp"],
        unique=False,
    )
    _make_measurements_a_hypertable_if_possible()


def _make_measurements_a_hypertable_if_possible() -> None:
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).scalar()
    if not available:
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    # Our own indexes already lead with the time-ordered columns we query by;
    # TimescaleDB's default extra index would only make `alembic check` differ.
    op.execute(
        "SELECT create_hypertable('measurements', 'timestamp', "
        "create_default_indexes => FALSE, if_not_exists => TRUE)"
    )


def downgrade() -> None:
    op.drop_index("ix_measurements_websdr_id_timestamp", table_name="measurements")
    op.drop_index("ix_measurements_task_id", table_name="measurements")
    op.drop_index("ix_measurements_frequency_mhz_timestamp", table_name="measurements")
    op.drop_table("measurements")
    op.drop_table("localizations")
    op.drop_index(
        "ix_models_one_active", table_name="models", postgresql_where=sa.text("is_active")
    )
    op.drop_table("models")
    op.drop_index("ix_acquisitions_status", table_name="acquisitions")
    op.drop_index("ix_acquisitions_created_at", table_name="acquisitions")
    op.drop_table("acquisitions")
    op.drop_table("websdr_stations")
    op.drop_table("training_sessions")
    op.drop_table("known_sources")
