"""Petition titles and texts in other languages.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "petition_texts",
        sa.Column("petition_id", sa.String(32), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"], ["petitions.id"], name=op.f("fk_petition_texts_petition_id_petitions")
        ),
        sa.PrimaryKeyConstraint("petition_id", "lang", name=op.f("pk_petition_texts")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("petition_texts")
