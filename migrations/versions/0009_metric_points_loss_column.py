"""metric_points gains ``loss``: ``values["loss"]`` as a typed float column.

The chart endpoint (``?max_points=``) ranks every iteration's loss of a job; extracting it
from a million JSON values cost PostgreSQL about a second on its own, before any
bucketing.  A real column is read at the speed of the row scan, and lets the min/max
bucketing run in SQL.  Existing rows are filled from their JSON here (a value that is
not a number stays null, as the writers store a NaN loss); new rows get it from the
model's insert default (``dljobs.db.models.MetricPoint.loss``).  The index
``(job_id, kind, step, loss)`` answers each chart bucket's extremes without the rows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

#: The backfill, by dialect: only a JSON number becomes a loss (null, text and the rest stay null).
BACKFILL = {
    'postgresql': """UPDATE metric_points SET loss = ("values"->>'loss')::double precision
                     WHERE json_typeof("values"->'loss') = 'number'""",
    'sqlite': """UPDATE metric_points SET loss = json_extract("values", '$.loss')
                 WHERE json_type("values", '$.loss') IN ('integer', 'real')""",
}


def upgrade() -> None:
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('loss', sa.Float(), nullable=True))
    op.execute(BACKFILL[op.get_bind().dialect.name])
    # After the backfill: one index build instead of a million index updates.
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.create_index('ix_metric_points_job_id_kind_step_loss', ['job_id', 'kind', 'step', 'loss'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.drop_index('ix_metric_points_job_id_kind_step_loss')
        batch_op.drop_column('loss')
