"""legal hold of backups

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('backups') as batch:
        batch.add_column(sa.Column('legal_hold', sa.Boolean(), server_default=sa.text('false'),
                                   nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('backups') as batch:
        batch.drop_column('legal_hold')
