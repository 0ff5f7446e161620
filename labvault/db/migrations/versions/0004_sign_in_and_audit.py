"""sign-in links, the audit trail, and the index of the Backups page's listing

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 07:00:00
"""

import sqlalchemy as sa
from alembic import op

import labvault.db.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sign_in_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('created_at', labvault.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', labvault.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', labvault.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sign_in_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_sign_in_tokens'))
    )
    op.create_index(op.f('ix_sign_in_tokens_user_id'), 'sign_in_tokens', ['user_id'], unique=False)
    op.create_index(op.f('ix_sign_in_tokens_email'), 'sign_in_tokens', ['email'], unique=False)
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', labvault.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('organization_sid', sa.String(length=64), nullable=False),
    sa.Column('backup_sid', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('door', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index('ix_audit_events_backup', 'audit_events', ['backup_sid', 'at'], unique=False)
    op.create_index('ix_backups_organization_sid_date_created', 'backups',
                    ['organization_sid', 'date_created'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_backups_organization_sid_date_created', table_name='backups')
    op.drop_index('ix_audit_events_backup', table_name='audit_events')
    op.drop_table('audit_events')
    op.drop_index(op.f('ix_sign_in_tokens_email'), table_name='sign_in_tokens')
    op.drop_index(op.f('ix_sign_in_tokens_user_id'), table_name='sign_in_tokens')
    op.drop_table('sign_in_tokens')
