"""The used-nonce table that makes a sign-form token single-use.

One client with one CSRF token could post thousands of signatures an hour; each rendered
sign form now carries a token with a random nonce (crypto.form_token), and a posted
token's nonce is kept here until the token could no longer be accepted anyway. The table
holds the nonce and an hour, nothing that identifies or orders anyone (SECURITY.md,
"What is stored").

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NO_ROWID = {"sqlite_with_rowid": False}


def upgrade() -> None:
    op.create_table(
        "used_form_nonces",
        sa.Column("nonce", sa.LargeBinary(16), nullable=False),
        sa.Column("expires_hour", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_used_form_nonces")),
        **NO_ROWID,
    )


def downgrade() -> None:
    # Forgetting the used nonces lets tokens issued in the last hours be posted once more;
    # a downgrade is an operator's deliberate step, and the older code ignores tokens.
    op.drop_table("used_form_nonces")
