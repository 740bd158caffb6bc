"""mail sender verdict

Revision ID: 0007_hardening
Revises: 0006_intake
Create Date: 2026-12-04 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sqlmodel.sql.sqltypes.AutoString)
from alembic import op

revision: str = "0007_hardening"
down_revision: str | None = '0006_intake'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("email_message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sender_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("email_message", schema=None) as batch_op:
        batch_op.drop_column("sender_verified")
