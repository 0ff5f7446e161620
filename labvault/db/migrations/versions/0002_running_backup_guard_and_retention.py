"""one running backup per organization; retention chosen per backup

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 19:58:38.665325
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


SUPERSEDE_OLDER_RUNNING_BACKUPS = """
UPDATE backups SET status = 'error',
    error = 'stale: superseded by a newer in-progress backup of the organization (migration 0002)'
WHERE status = 'in_progress' AND date_deleted IS NULL AND EXISTS (
    SELECT 1 FROM backups AS newer
    WHERE newer.organization_sid = backups.organization_sid
      AND newer.status = 'in_progress' AND newer.date_deleted IS NULL
      AND (newer.date_created > backups.date_created
           OR (newer.date_created = backups.date_created AND newer.sid > backups.sid)))
"""


def upgrade() -> None:
    # Rows from before the rule: keep the newest running backup per organization.
    op.execute(SUPERSEDE_OLDER_RUNNING_BACKUPS)
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
        batch_op.create_index('uq_backups_one_in_progress_per_organization', ['organization_sid'], unique=True, sqlite_where=sa.text("status = 'in_progress' AND date_deleted IS NULL"), postgresql_where=sa.text("status = 'in_progress' AND date_deleted IS NULL"))



def downgrade() -> None:
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.drop_column('retention_days')
        batch_op.drop_index('uq_backups_one_in_progress_per_organization', sqlite_where=sa.text("status = 'in_progress' AND date_deleted IS NULL"), postgresql_where=sa.text("status = 'in_progress' AND date_deleted IS NULL"))

