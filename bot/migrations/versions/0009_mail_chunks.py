"""received mail stored in pieces (email_chunk)

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'email_chunk',
        sa.Column('email_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['email_id'], ['email_message.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('email_id', 'seq'),
    )


def downgrade() -> None:
    op.drop_table('email_chunk')
