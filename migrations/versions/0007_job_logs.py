"""Job logs: ``job_logs``, the lines a worker writes while it runs a job; two read indexes on ``jobs``.

Workers live on other machines than the API: their log lines for a job are stored
here (``dljobs.joblogs``, in batches) so ``GET /jobs/<id>/logs`` reaches them with no
shared disk, also after the worker is gone.  Rows go with their job (cascade).

``jobs`` gains ``(status, created_at)``, so the job list filtered by a rare status
(running, queued) among 100,000 jobs reads its page from the index instead of scanning
past every other job, and ``(status, started_at, finished_at)``, so the duration
histogram of ``/metrics`` is read from the index alone (bench/joblist.py measures both).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_logs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('logger', sa.String(length=200), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_logs_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_logs'))
    )
    with op.batch_alter_table('job_logs', schema=None) as batch_op:
        batch_op.create_index('ix_job_logs_job_id_id', ['job_id', 'id'], unique=False)
    # Plain CREATE INDEX on both databases: no batch, so SQLite never rebuilds ``jobs``
    # (a rebuild would cascade into every table that refers to it).
    op.create_index('ix_jobs_status_created_at', 'jobs', ['status', 'created_at'], unique=False)
    op.create_index('ix_jobs_status_started_at_finished_at', 'jobs', ['status', 'started_at', 'finished_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_jobs_status_started_at_finished_at', table_name='jobs')
    op.drop_index('ix_jobs_status_created_at', table_name='jobs')
    with op.batch_alter_table('job_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_job_logs_job_id_id')
    op.drop_table('job_logs')
