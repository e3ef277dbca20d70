"""Artifacts stored in chunks: ``artifact_chunks``, and artifacts gain ``complete`` and ``sha256``.

A checkpoint of a gigabyte did not fit one ``bytea`` value (PostgreSQL reads back at most
about 512 MiB of one, and stores at most 1 GiB), and writing it held the job's row.  The
bytes now live in ``artifact_chunks`` (``dljobs.artifacts.CHUNK_BYTES`` each), written
one short transaction at a time; ``complete`` says the last one is in.

Existing ``artifacts.blob`` values move into chunks (cut by the database with
``substr``, so no value is read whole), then the column is dropped: one home for an
artifact's bytes, so no reader has to know two.  Downgrade puts them back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

# Readers take chunks of any size in order, so the service's current size is safe here.
from dljobs.artifacts import CHUNK_BYTES

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


artifacts = sa.table(
    'artifacts',
    sa.column('id', sa.Integer),
    sa.column('blob', sa.LargeBinary),
    sa.column('size_bytes', sa.BigInteger),
    sa.column('complete', sa.Boolean),
    sa.column('sha256', sa.String),
)
chunks = sa.table(
    'artifact_chunks',
    sa.column('artifact_id', sa.Integer),
    sa.column('seq', sa.Integer),
    sa.column('data', sa.LargeBinary),
)


def upgrade() -> None:
    op.create_table('artifact_chunks',
    sa.Column('artifact_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('artifact_id', 'seq', name=op.f('pk_artifact_chunks'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        # Weights barely compress: trying (pglz on every 8 MiB value) cost 40% of the write time.
        op.execute('ALTER TABLE artifact_chunks ALTER COLUMN data SET STORAGE EXTERNAL')
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complete', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))

    bind = op.get_bind()
    for artifact_id, size in bind.execute(sa.select(artifacts.c.id, sa.func.length(artifacts.c.blob))).all():
        digest = hashlib.sha256()
        size = int(size or 0)
        for seq, start in enumerate(range(0, size, CHUNK_BYTES)):
            piece = bind.execute(
                sa.select(sa.type_coerce(sa.func.substr(artifacts.c.blob, start + 1, CHUNK_BYTES), sa.LargeBinary))
                .where(artifacts.c.id == artifact_id)
            ).scalar_one()
            piece = bytes(piece)
            digest.update(piece)
            bind.execute(sa.insert(chunks).values(artifact_id=artifact_id, seq=seq, data=piece))
        bind.execute(
            sa.update(artifacts)
            .where(artifacts.c.id == artifact_id)
            .values(complete=True, sha256=digest.hexdigest(), size_bytes=size)
        )

    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.alter_column('complete', existing_type=sa.Boolean(), nullable=False)
        batch_op.drop_column('blob')
    # The foreign key comes last: SQLite rebuilds ``artifacts`` above (DROP TABLE, with its
    # cascade), which would have deleted every chunk just written.
    with op.batch_alter_table('artifact_chunks', schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f('fk_artifact_chunks_artifact_id_artifacts'), 'artifacts', ['artifact_id'], ['id'],
            ondelete='CASCADE',
        )


def downgrade() -> None:
    bind = op.get_bind()
    # An artifact never completed holds no usable bytes: it has no place in the old schema.
    bind.execute(sa.delete(chunks).where(chunks.c.artifact_id.in_(
        sa.select(artifacts.c.id).where(artifacts.c.complete.is_(False)))))
    bind.execute(sa.delete(artifacts).where(artifacts.c.complete.is_(False)))
    # Rebuilding ``artifacts`` on SQLite cascades into the chunks: drop their key before.
    with op.batch_alter_table('artifact_chunks', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_artifact_chunks_artifact_id_artifacts'), type_='foreignkey')
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blob', sa.LargeBinary(), nullable=True))
    for (artifact_id,) in bind.execute(sa.select(artifacts.c.id)).all():
        pieces = bind.execute(
            sa.select(chunks.c.data).where(chunks.c.artifact_id == artifact_id).order_by(chunks.c.seq)
        ).scalars()
        bind.execute(sa.update(artifacts).where(artifacts.c.id == artifact_id)
                     .values(blob=b"".join(bytes(p) for p in pieces)))
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.alter_column('blob', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('sha256')
        batch_op.drop_column('complete')
    op.drop_table('artifact_chunks')
