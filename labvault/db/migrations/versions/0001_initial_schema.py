"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 19:19:12.549960
"""

import sqlalchemy as sa
from alembic import op

import labvault.db.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organizations',
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('sid', name=op.f('pk_organizations'))
    )
    op.create_table('backups',
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('organization_sid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('in_progress', 'completed', 'error', name='backup_status', native_enum=False, length=16), nullable=False),
    sa.Column('versions', sa.Integer(), nullable=True),
    sa.Column('files', sa.Integer(), nullable=True),
    sa.Column('file_size', sa.BigInteger(), nullable=True),
    sa.Column('file_path', sa.Text(), nullable=True),
    sa.Column('cost', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=320), nullable=True),
    sa.Column('date_created', labvault.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('date_completed', labvault.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('date_expired', labvault.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('date_deleted', labvault.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('progress_done', sa.BigInteger(), nullable=True),
    sa.Column('progress_total', sa.BigInteger(), nullable=True),
    sa.Column('heartbeat_at', labvault.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_sid'], ['organizations.sid'], name=op.f('fk_backups_organization_sid_organizations')),
    sa.PrimaryKeyConstraint('sid', name=op.f('pk_backups'))
    )
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backups_flow_run_id'), ['flow_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_organization_sid'), ['organization_sid'], unique=False)

    op.create_table('records',
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('organization_sid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['organization_sid'], ['organizations.sid'], name=op.f('fk_records_organization_sid_organizations')),
    sa.PrimaryKeyConstraint('sid', name=op.f('pk_records'))
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_organization_sid'), ['organization_sid'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('organization_sid', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['organization_sid'], ['organizations.sid'], name=op.f('fk_users_organization_sid_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_organization_sid'), ['organization_sid'], unique=False)

    op.create_table('files',
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('organization_sid', sa.String(length=64), nullable=False),
    sa.Column('record_sid', sa.String(length=64), nullable=True),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('content_type', sa.String(length=255), nullable=True),
    sa.Column('storage_key', sa.Text(), nullable=False),
    sa.Column('created_at', labvault.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_sid'], ['organizations.sid'], name=op.f('fk_files_organization_sid_organizations')),
    sa.ForeignKeyConstraint(['record_sid'], ['records.sid'], name=op.f('fk_files_record_sid_records')),
    sa.PrimaryKeyConstraint('uid', name=op.f('pk_files'))
    )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.create_index('ix_files_organization_sid_uid', ['organization_sid', 'uid'], unique=False)

    op.create_table('versions',
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('record_sid', sa.String(length=64), nullable=False),
    sa.Column('organization_sid', sa.String(length=64), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', labvault.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=320), nullable=True),
    sa.ForeignKeyConstraint(['organization_sid'], ['organizations.sid'], name=op.f('fk_versions_organization_sid_organizations')),
    sa.ForeignKeyConstraint(['record_sid'], ['records.sid'], name=op.f('fk_versions_record_sid_records')),
    sa.PrimaryKeyConstraint('sid', name=op.f('pk_versions'))
    )
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.create_index('ix_versions_organization_sid_sid', ['organization_sid', 'sid'], unique=False)
        batch_op.create_index(batch_op.f('ix_versions_record_sid'), ['record_sid'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_versions_record_sid'))
        batch_op.drop_index('ix_versions_organization_sid_sid')

    op.drop_table('versions')
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index('ix_files_organization_sid_uid')

    op.drop_table('files')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_organization_sid'))

    op.drop_table('users')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_organization_sid'))

    op.drop_table('records')
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backups_organization_sid'))
        batch_op.drop_index(batch_op.f('ix_backups_flow_run_id'))

    op.drop_table('backups')
    op.drop_table('organizations')
