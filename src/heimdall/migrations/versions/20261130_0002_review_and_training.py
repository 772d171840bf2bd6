"""Review and training: reviewer, known-source details, job progress, model registry history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 07:42:39.435613
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("acquisitions", sa.Column("reviewed_by", sa.Text(), nullable=True))
    op.create_index(
        "ix_acquisitions_known_source_id", "acquisitions", ["known_source_id"], unique=False
    )
    op.add_column("known_sources", sa.Column("modulation", sa.Text(), nullable=True))
    op.add_column(
        "known_sources",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column("models", sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "models",
        sa.Column("training_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "training_sessions",
        sa.Column("progress", sa.Float(), server_default="0", nullable=False),
    )
    op.add_column(
        "training_sessions",
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("training_sessions", sa.Column("model_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_training_sessions_model_id_models"),
        "training_sessions",
        "models",
        ["model_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_training_sessions_created_at", "training_sessions", ["created_at"], unique=False
    )
    op.create_check_constraint(
        op.f("ck_training_sessions_status"),
        "training_sessions",
        "status IN ('PENDING', 'PROGRESS', 'SUCCESS', 'FAILED', 'CANCELLED')",
    )
    op.create_check_constraint(
        op.f("ck_training_sessions_progress"),
        "training_sessions",
        "progress >= 0 AND progress <= 100",
    )
    op.create_table(
        "model_activations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_activations_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_activations")),
    )
    op.create_index(
        "ix_model_activations_name_created_at",
        "model_activations",
        ["name", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_model_activations_name_created_at", table_name="model_activations")
    op.drop_table("model_activations")
    op.drop_constraint(op.f("ck_training_sessions_progress"), "training_sessions", type_="check")
    op.drop_constraint(op.f("ck_training_sessions_status"), "training_sessions", type_="check")
    op.drop_index("ix_training_sessions_created_at", table_name="training_sessions")
    op.drop_constraint(
        op.f("fk_training_sessions_model_id_models"), "training_sessions", type_="foreignkey"
    )
    op.drop_column("training_sessions", "model_id")
    op.drop_column("training_sessions", "result")
    op.drop_column("training_sessions", "progress")
    op.drop_column("models", "training_data")
    op.drop_column("models", "activated_at")
    op.drop_column("known_sources", "updated_at")
    op.drop_column("known_sources", "modulation")
    op.drop_index("ix_acquisitions_known_source_id", table_name="acquisitions")
    op.drop_column("acquisitions", "reviewed_by")
