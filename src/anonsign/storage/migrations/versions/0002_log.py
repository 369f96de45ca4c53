"""The public log: signatures' publication flag, leaves, subtree hashes, checkpoints.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NO_ROWID = {"sqlite_with_rowid": False}


def upgrade() -> None:
    with op.batch_alter_table("petitions", table_kwargs=NO_ROWID) as batch:
        # Existing petitions (none in a released version) get the default log name.
        batch.add_column(
            sa.Column("log_origin", sa.String(200), nullable=False, server_default="anonsign")
        )
        batch.add_column(
            sa.Column("receipts", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("petitions", table_kwargs=NO_ROWID) as batch:
        batch.alter_column("log_origin", server_default=None)
    with op.batch_alter_table("signatures", table_kwargs=NO_ROWID) as batch:
        batch.add_column(
            sa.Column("logged", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        "ix_signatures_pending",
        "signatures",
        ["petition_id", "dedup_key"],
        sqlite_where=sa.text("NOT logged"),
        postgresql_where=sa.text("NOT logged"),
    )
    op.create_table(
        "log_leaves",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("entry", sa.LargeBinary(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"], ["petitions.id"], name=op.f("fk_log_leaves_petition_id_petitions")
        ),
        sa.PrimaryKeyConstraint("petition_id", "idx", name=op.f("pk_log_leaves")),
        **NO_ROWID,
    )
    op.create_index("ix_log_leaves_entry", "log_leaves", ["petition_id", "entry"], unique=True)
    op.create_table(
        "log_nodes",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"], ["petitions.id"], name=op.f("fk_log_nodes_petition_id_petitions")
        ),
        sa.PrimaryKeyConstraint("petition_id", "level", "idx", name=op.f("pk_log_nodes")),
        **NO_ROWID,
    )
    op.create_table(
        "checkpoints",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("published_hour", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"], ["petitions.id"], name=op.f("fk_checkpoints_petition_id_petitions")
        ),
        sa.PrimaryKeyConstraint("petition_id", "size", name=op.f("pk_checkpoints")),
        **NO_ROWID,
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.drop_table("log_nodes")
    op.drop_index("ix_log_leaves_entry", table_name="log_leaves")
    op.drop_table("log_leaves")
    op.drop_index("ix_signatures_pending", table_name="signatures")
    with op.batch_alter_table("signatures", table_kwargs=NO_ROWID) as batch:
        batch.drop_column("logged")
    with op.batch_alter_table("petitions", table_kwargs=NO_ROWID) as batch:
        batch.drop_column("receipts")
        batch.drop_column("log_origin")
