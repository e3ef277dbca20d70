"""Hand-backs that use no attempt, and the attempt each metric point came from.

``jobs.handbacks`` counts the times a worker gave the job back on purpose (a warm
shutdown, ``dljobs up`` stopped): the claim allows ``attempt - handbacks < max_attempts``,
so only lost workers use up attempts.  ``metric_points.attempt`` is the attempt that
wrote a point: a resumed attempt deletes the points of earlier ones past its checkpoint,
so the history never holds an iteration twice.  Points written before this revision
get attempt 1 (their attempt was not recorded).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handbacks', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), nullable=True))
    op.execute("UPDATE metric_points SET attempt = 1")


def downgrade() -> None:
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.drop_column('attempt')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('handbacks')
