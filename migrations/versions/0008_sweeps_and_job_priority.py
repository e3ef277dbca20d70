"""Sweeps, and the job columns they need: priority, the sweep a trial belongs to, its budget.

``sweeps`` holds a search's request (base spec, space, method, metric, max_concurrent,
priority), its status and the method's state (``dljobs.sweeps``).  A job gains its
``priority`` (0-9, 5 for the jobs already stored), and as a sweep's trial its
``sweep_id``, ``trial_index``, ``trial_params`` and ``budget_epochs``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sweeps',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=True),
        sa.Column('owner', sa.String(length=255), nullable=True),
        sa.Column('base', sa.JSON(), nullable=False),
        sa.Column('space', sa.JSON(), nullable=False),
        sa.Column('method', sa.JSON(), nullable=False),
        sa.Column('metric', sa.String(length=32), nullable=False),
        sa.Column('max_concurrent', sa.Integer(), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('state', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps')),
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_sweeps_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_sweeps_created_at'), ['created_at'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='5'))
        batch_op.add_column(sa.Column('sweep_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('trial_index', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('trial_params', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('budget_epochs', sa.Integer(), nullable=True))
        # No foreign key: on SQLite adding one rebuilds ``jobs``, and dropping the old table would
        # cascade-delete the metric points, events and artifacts of every job already stored.
        batch_op.create_index(batch_op.f('ix_jobs_sweep_id'), ['sweep_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_sweep_id'))
        batch_op.drop_column('budget_epochs')
        batch_op.drop_column('trial_params')
        batch_op.drop_column('trial_index')
        batch_op.drop_column('sweep_id')
        batch_op.drop_column('priority')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_created_at'))
        batch_op.drop_index(batch_op.f('ix_sweeps_status'))
        batch_op.drop_index(batch_op.f('ix_sweeps_owner'))
    op.drop_table('sweeps')
