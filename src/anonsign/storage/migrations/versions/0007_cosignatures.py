"""Witness cosignatures of each petition's checkpoints.

A cosignature line (c2sp.org/tlog-cosignature) is served after the log's own signature
on the checkpoint it cosigns. One row per checkpoint size and witness key; the line holds
the witness's timestamp (when the witness signed, a public fact of the witness's, at the
granularity of a batch, never of a signature).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NO_ROWID = {"sqlite_with_rowid": False}


def upgrade() -> None:
    op.create_table(
        "cosignatures",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.LargeBinary(4), nullable=False),
        sa.Column("witness", sa.Text(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"], ["petitions.id"], name=op.f("fk_cosignatures_petition_id_petitions")
        ),
        sa.PrimaryKeyConstraint("petition_id", "size", "key_id", name=op.f("pk_cosignatures")),
        **NO_ROWID,
    )


def downgrade() -> None:
    op.drop_table("cosignatures")
