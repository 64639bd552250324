"""edition sections, quarantine, soft bounces

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:46:34.327289
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('edition_sections',
    sa.Column('edition_id', sa.String(length=100), nullable=False),
    sa.Column('section_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('topics', sa.JSON(), nullable=False),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('edition_id', 'section_id')
    )
    op.create_table('quarantined_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('soft_bounces', sa.Integer(), nullable=False, server_default='0'))



def downgrade() -> None:
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_column('soft_bounces')

    op.drop_table('quarantined_events')
    op.drop_table('edition_sections')
