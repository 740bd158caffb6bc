"""slack_intake: commands, actions and submissions stored before they are acknowledged

Revision ID: 0006_intake
Revises: 0005_alerts
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sqlmodel.sql.sqltypes.AutoString)
from alembic import op

revision: str = "0006_intake"
down_revision: str | None = '0005_alerts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "slack_intake",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("team_id", text(length=32), nullable=False),
        sa.Column("intake_key", text(length=128), nullable=False),
        sa.Column("kind", text(length=32), nullable=False),
        sa.Column("name", text(length=255), nullable=False),
        sa.Column("user_id", text(length=32), nullable=False),
        sa.Column("response_url", text(length=1000), nullable=True),
        sa.Column("trigger_id", text(length=255), nullable=True),
        sa.Column("content_type", text(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", text(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("owner", text(length=32), nullable=True),
        sa.Column("lease_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_error", text(length=2000), nullable=True),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("processed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("notified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id", "intake_key"),
    )
    with op.batch_alter_table("slack_intake", schema=None) as batch_op:
        batch_op.create_index(
            "ix_slack_intake_pending", ["workspace_id", "status", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_intake", schema=None) as batch_op:
        batch_op.drop_index("ix_slack_intake_pending")
    op.drop_table("slack_intake")
