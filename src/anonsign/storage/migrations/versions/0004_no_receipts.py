"""No receipts: drop ``petitions.receipts``.

A receipt (the signer's log entry on the thank-you page) is a membership oracle: whoever
submits a suspect's identifier gets the entry and asks the public log whether it is
included (SECURITY.md, "why there are no receipts"). Petitions created with receipts on
simply show none from now on; nothing else about them changes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NO_ROWID = {"sqlite_with_rowid": False}


def upgrade() -> None:
    with op.batch_alter_table("petitions", table_kwargs=NO_ROWID) as batch:
        batch.drop_column("receipts")


def downgrade() -> None:
    # Every petition comes back with receipts off: turning the oracle back on for a
    # petition is not something a downgrade should do by itself.
    with op.batch_alter_table("petitions", table_kwargs=NO_ROWID) as batch:
        batch.add_column(
            sa.Column("receipts", sa.Boolean(), nullable=False, server_default=sa.false())
        )
