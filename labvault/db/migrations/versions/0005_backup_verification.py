"""the last verification of each backup's archive

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 07:00:00
"""

import sqlalchemy as sa
from alembic import op

import labvault.db.models

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('backups') as batch:
        batch.add_column(sa.Column('verified_at', labvault.db.models.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('verified_ok', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('verification_problem', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('backups') as batch:
        batch.drop_column('verification_problem')
        batch.drop_column('verified_ok')
        batch.drop_column('verified_at')
