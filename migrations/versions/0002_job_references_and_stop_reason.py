"""The job's service references become typed columns; a job says why and when its run stopped.

``dataset_id`` (an uploaded data set) and ``warm_start_job_id`` (a finished job whose
model starts the run) were spec fields (``dataset.dataset_id``, ``training.warm_start``)
that the API, the runner and the trainer rewrote in turn; ``training.max_attempts``
was already a column and leaves the spec too.  ``stop_reason`` and ``stopped_epoch``
record an early end (``early_stopping``, ``max_runtime``, ...).  Existing rows are
moved over: the references out of the stored spec into the columns (and back on
downgrade).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_jobs = sa.table(
    'jobs',
    sa.column('id', sa.String),
    sa.column('spec', sa.JSON),
    sa.column('max_attempts', sa.Integer),
    sa.column('dataset_id', sa.String),
    sa.column('warm_start_job_id', sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dataset_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('warm_start_job_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('stop_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('stopped_epoch', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_warm_start_job_id'), ['warm_start_job_id'], unique=False)

    connection = op.get_bind()
    for job_id, spec in connection.execute(sa.select(_jobs.c.id, _jobs.c.spec)).all():
        if not isinstance(spec, dict):
            continue
        spec = dict(spec)
        dataset = dict(spec.get('dataset') or {})
        training = dict(spec.get('training') or {})
        dataset_id = dataset.pop('dataset_id', None)
        warm_start = training.pop('warm_start', None)
        training.pop('max_attempts', None)  # the column already holds it
        if 'dataset' in spec:
            dataset.pop('path', None)  # the runner's rewrite, never the user's
            spec['dataset'] = dataset
        if 'training' in spec:
            spec['training'] = training
        connection.execute(
            sa.update(_jobs)
            .where(_jobs.c.id == job_id)
            .values(spec=spec, dataset_id=dataset_id, warm_start_job_id=warm_start)
        )


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_jobs.c.id, _jobs.c.spec, _jobs.c.max_attempts, _jobs.c.dataset_id, _jobs.c.warm_start_job_id)
    ).all()
    for job_id, spec, max_attempts, dataset_id, warm_start in rows:
        if not isinstance(spec, dict):
            continue
        spec = dict(spec)
        if isinstance(spec.get('dataset'), dict) and spec['dataset'].get('type') == 'npz':
            spec['dataset'] = {**spec['dataset'], 'dataset_id': dataset_id, 'path': None}
        if isinstance(spec.get('training'), dict):
            spec['training'] = {**spec['training'], 'warm_start': warm_start, 'max_attempts': max_attempts}
        connection.execute(sa.update(_jobs).where(_jobs.c.id == job_id).values(spec=spec))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_warm_start_job_id'))
        batch_op.drop_index(batch_op.f('ix_jobs_dataset_id'))
        batch_op.drop_column('stopped_epoch')
        batch_op.drop_column('stop_reason')
        batch_op.drop_column('warm_start_job_id')
        batch_op.drop_column('dataset_id')
