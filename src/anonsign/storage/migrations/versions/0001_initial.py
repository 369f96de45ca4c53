"""Petitions, their recipients, signatures (dedup keys only) and sealed contacts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NO_ROWID = {"sqlite_with_rowid": False}


def upgrade() -> None:
    op.create_table(
        "petitions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("identifier_kind", sa.String(8), nullable=False),
        sa.Column("phone_region", sa.String(2), nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("salt", sa.LargeBinary(16), nullable=False),
        sa.Column("wrapped_pepper", sa.LargeBinary(64), nullable=True),
        sa.Column("argon2_time_cost", sa.Integer(), nullable=False),
        sa.Column("argon2_memory_kib", sa.Integer(), nullable=False),
        sa.Column("argon2_parallelism", sa.Integer(), nullable=False),
        sa.CheckConstraint("state IN ('open', 'closed')", name=op.f("ck_petitions_state")),
        sa.CheckConstraint(
            "identifier_kind IN ('email', 'phone', 'text')",
            name=op.f("ck_petitions_identifier_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_petitions")),
        sa.UniqueConstraint("slug", name=op.f("uq_petitions_slug")),
        **NO_ROWID,
    )
    op.create_table(
        "petition_recipients",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("key_id", sa.LargeBinary(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"],
            ["petitions.id"],
            name=op.f("fk_petition_recipients_petition_id_petitions"),
        ),
        sa.PrimaryKeyConstraint("petition_id", "key_id", name=op.f("pk_petition_recipients")),
        **NO_ROWID,
    )
    op.create_table(
        "signatures",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("dedup_key", sa.LargeBinary(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"], ["petitions.id"], name=op.f("fk_signatures_petition_id_petitions")
        ),
        sa.PrimaryKeyConstraint("petition_id", "dedup_key", name=op.f("pk_signatures")),
        **NO_ROWID,
    )
    op.create_table(
        "sealed_contacts",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("id", sa.LargeBinary(16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"],
            ["petitions.id"],
            name=op.f("fk_sealed_contacts_petition_id_petitions"),
        ),
        sa.PrimaryKeyConstraint("petition_id", "id", name=op.f("pk_sealed_contacts")),
        **NO_ROWID,
    )


def downgrade() -> None:
    op.drop_table("sealed_contacts")
    op.drop_table("signatures")
    op.drop_table("petition_recipients")
    op.drop_table("petitions")
