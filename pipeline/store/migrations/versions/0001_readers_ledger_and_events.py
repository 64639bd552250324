"""readers, ledger and events

Revision ID: 0001
Revises:
Create Date: 2026-11-25 17:28:00.052320
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audiences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('engagement_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_event_id', sa.String(length=100), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=True),
    sa.Column('edition_id', sa.String(length=100), nullable=True),
    sa.Column('section_id', sa.String(length=100), nullable=True),
    sa.Column('variant_id', sa.String(length=32), nullable=True),
    sa.Column('holdout', sa.Boolean(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('applied', sa.Boolean(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider_event_id')
    )
    with op.batch_alter_table('engagement_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engagement_events_edition_id'), ['edition_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_engagement_events_reader_id'), ['reader_id'], unique=False)

    op.create_table('readers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('audience_id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('first_name', sa.String(length=200), nullable=False),
    sa.Column('last_name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('suppressed_reason', sa.String(length=64), nullable=True),
    sa.Column('suppressed_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['audience_id'], ['audiences.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('audience_id', 'email', name='uq_readers_audience_email'),
    sa.UniqueConstraint('public_id')
    )
    op.create_table('reader_interests',
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('declared_weight', sa.Float(), nullable=True),
    sa.Column('learned_clicks', sa.Float(), nullable=False),
    sa.Column('learned_exposures', sa.Float(), nullable=False),
    sa.Column('learned_at', sa.DateTime(), nullable=True),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('reader_id', 'topic')
    )
    op.create_table('reader_needs',
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('reader_id', 'topic')
    )
    op.create_table('send_ledger',
    sa.Column('edition_id', sa.String(length=100), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('audience_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.String(length=32), nullable=False),
    sa.Column('picks', sa.JSON(), nullable=False),
    sa.Column('holdout', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('batch_id', sa.String(length=120), nullable=True),
    sa.Column('message_id', sa.String(length=200), nullable=True),
    sa.Column('transport', sa.String(length=40), nullable=True),
    sa.Column('planned_at', sa.DateTime(), nullable=False),
    sa.Column('sending_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['audience_id'], ['audiences.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('edition_id', 'reader_id')
    )
    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_send_ledger_state', ['edition_id', 'state', 'variant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_send_ledger_state')

    op.drop_table('send_ledger')
    op.drop_table('reader_needs')
    op.drop_table('reader_interests')
    op.drop_table('readers')
    with op.batch_alter_table('engagement_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engagement_events_reader_id'))
        batch_op.drop_index(batch_op.f('ix_engagement_events_edition_id'))

    op.drop_table('engagement_events')
    op.drop_table('audiences')
