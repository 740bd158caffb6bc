"""time entries: the customer index covers what profitability sums

The set-based recompute sums a block of customers' time; with every summed column in the
index, SQLite reads the block as one range of the index instead of one table page per entry.

Revision ID: 0010_time_cover
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0010_time_cover'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERING = ['workspace_id', 'customer_id', 'work_date', 'member_id', 'contract_id', 'billable',
            'minutes']


def upgrade() -> None:
    with op.batch_alter_table('time_entry', schema=None) as batch_op:
        batch_op.create_index('ix_time_ws_customer_cover', COVERING, unique=False)
        batch_op.drop_index('ix_time_ws_customer_date')


def downgrade() -> None:
    with op.batch_alter_table('time_entry', schema=None) as batch_op:
        batch_op.create_index(
            'ix_time_ws_customer_date', ['workspace_id', 'customer_id', 'work_date'], unique=False
        )
        batch_op.drop_index('ix_time_ws_customer_cover')
