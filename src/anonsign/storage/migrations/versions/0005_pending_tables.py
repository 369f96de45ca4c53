"""Pending submissions and contacts in their own tables, drained at every batch.

The ``signatures`` table kept every signer's row for ever, with a partial index on the
unpublished ones, so its pages (and the WAL) kept the arrival order of each batch, and
a repeat of a published signer wrote fewer pages than a new one. Now every submission
adds a row to ``pending_signatures`` and every contact to ``pending_contacts``; the
publisher appends the new dedup keys to the log, moves the contacts to
``sealed_contacts`` in the order of their random ids, and deletes the pending rows.
Published signers are the log's leaves, so ``signatures`` goes; its unpublished rows
become pending rows.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NO_ROWID = {"sqlite_with_rowid": False}


def _pending_table(name: str, column: sa.Column[bytes]) -> None:
    op.create_table(
        name,
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("id", sa.LargeBinary(16), nullable=False),
        column,
        sa.ForeignKeyConstraint(
            ["petition_id"], ["petitions.id"], name=op.f(f"fk_{name}_petition_id_petitions")
        ),
        sa.PrimaryKeyConstraint("petition_id", "id", name=op.f(f"pk_{name}")),
        **NO_ROWID,
    )


def upgrade() -> None:
    _pending_table("pending_signatures", sa.Column("dedup_key", sa.LargeBinary(32), nullable=False))
    _pending_table("pending_contacts", sa.Column("sealed", sa.LargeBinary(), nullable=False))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT petition_id, dedup_key FROM signatures WHERE NOT logged")
    ).all()
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO pending_signatures (petition_id, id, dedup_key) "
                "VALUES (:petition_id, :id, :dedup_key)"
            ),
            [
                {"petition_id": p, "id": secrets.token_bytes(16), "dedup_key": bytes(k)}
                for p, k in rows
            ],
        )
    op.drop_index("ix_signatures_pending", table_name="signatures")
    op.drop_table("signatures")


def downgrade() -> None:
    op.create_table(
        "signatures",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("dedup_key", sa.LargeBinary(32), nullable=False),
        sa.Column("logged", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(
            ["petition_id"], ["petitions.id"], name=op.f("fk_signatures_petition_id_petitions")
        ),
        sa.PrimaryKeyConstraint("petition_id", "dedup_key", name=op.f("pk_signatures")),
        **NO_ROWID,
    )
    op.create_index(
        "ix_signatures_pending",
        "signatures",
        ["petition_id", "dedup_key"],
        sqlite_where=sa.text("NOT logged"),
        postgresql_where=sa.text("NOT logged"),
    )
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "INSERT INTO signatures (petition_id, dedup_key, logged) "
            "SELECT petition_id, entry, TRUE FROM log_leaves"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO signatures (petition_id, dedup_key, logged) "
            "SELECT DISTINCT p.petition_id, p.dedup_key, FALSE FROM pending_signatures p "
            "WHERE NOT EXISTS (SELECT 1 FROM log_leaves l "
            "WHERE l.petition_id = p.petition_id AND l.entry = p.dedup_key)"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO sealed_contacts (petition_id, id, sealed) "
            "SELECT petition_id, id, sealed FROM pending_contacts"
        )
    )
    op.drop_table("pending_contacts")
    op.drop_table("pending_signatures")
