"""cost changes: a back-dated cost rate is added to the stored results as a difference

Revision ID: 0011_cost_change
Revises: 0010_time_cover
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011_cost_change'
down_revision: str | None = '0010_time_cover'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'cost_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('workspace_id', sa.Integer(), nullable=False),
        sa.Column('deltas', sa.JSON(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('cost_change', schema=None) as batch_op:
        batch_op.create_index('ix_cost_change_workspace_id', ['workspace_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cost_change', schema=None) as batch_op:
        batch_op.drop_index('ix_cost_change_workspace_id')
    op.drop_table('cost_change')
