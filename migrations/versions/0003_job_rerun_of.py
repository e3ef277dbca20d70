"""A job remembers the job it was rerun from (``rerun_of``), a typed column.

``POST /jobs/<id>/rerun`` sets it; the job answer shows it, so a user can walk a job
back to the run it repeats.  It is a plain id, not a foreign key: the original may be
deleted later and its reruns keep the id it had.  Jobs written before this revision
have no record of it and keep NULL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rerun_of', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_rerun_of'), ['rerun_of'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_rerun_of'))
        batch_op.drop_column('rerun_of')
