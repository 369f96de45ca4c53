"""Alembic environment: migrations run on the engine anonsign passes in.

On SQLite, a batch migration copies a table, drops the original and renames the copy.
With ``foreign_keys=ON`` (set on every connection, storage.db), dropping a table that
other rows refer to fails, so a migration that rebuilds ``petitions`` would fail on any
instance that has a petition. Foreign keys are therefore off while migrations run (SQLite
ignores the pragma inside a transaction, so it is set before and restored after), and
``PRAGMA foreign_key_check`` inside the same transaction refuses to commit a migration
that left a dangling reference.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, Engine

from anonsign.storage.models import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - guarded misuse
    raise RuntimeError("Run migrations through anonsign (anonsign init), not the alembic CLI.")


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()


if engine.dialect.name == "sqlite":
    with engine.connect() as connection:
        # The driver connection is in autocommit mode (storage.db), outside any transaction.
        raw: Any = connection.connection.driver_connection
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                _run_migrations(connection)
                dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if dangling:
                    raise RuntimeError(f"A migration left dangling references: {dangling[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
else:
    with engine.begin() as connection:
        _run_migrations(connection)
