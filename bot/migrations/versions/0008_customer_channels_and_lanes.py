"""customer channels (internal channel, customer-facing notices, ticket reaction) and
outbox delivery lanes

Revision ID: 0008
Revises: 0007_hardening
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007_hardening'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('internal_channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        for name in ('notify_ack', 'notify_taken', 'notify_waiting', 'notify_resolved'):
            batch_op.add_column(
                sa.Column(name, sa.Boolean(), server_default=sa.true(), nullable=False)
            )
    with op.batch_alter_table('workspace', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'ticket_reaction',
                sqlmodel.sql.sqltypes.AutoString(length=64),
                server_default='ticket',
                nullable=False,
            )
        )
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lane', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(
            sa.Column('coalesce_key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch_op.create_index(
            batch_op.f('ix_outbox_message_coalesce_key'), ['coalesce_key'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_message_coalesce_key'))
        batch_op.drop_column('coalesce_key')
        batch_op.drop_column('lane')
    with op.batch_alter_table('workspace', schema=None) as batch_op:
        batch_op.drop_column('ticket_reaction')
    with op.batch_alter_table('customer', schema=None) as batch_op:
        for name in ('notify_resolved', 'notify_waiting', 'notify_taken', 'notify_ack'):
            batch_op.drop_column(name)
        batch_op.drop_column('internal_channel')
