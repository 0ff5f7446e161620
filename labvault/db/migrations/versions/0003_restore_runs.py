"""restores that committed, so their staged blobs are promoted after a crash

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 04:30:00
"""

import sqlalchemy as sa
from alembic import op

import labvault.db.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('restore_runs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('organization_sid', sa.String(length=64), nullable=False),
    sa.Column('committed_at', labvault.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_restore_runs'))
    )


def downgrade() -> None:
    op.drop_table('restore_runs')
