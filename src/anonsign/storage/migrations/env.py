"""Alembic environment: migrations run on the engine anonsign passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from anonsign.storage.models import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - guarded misuse
    raise RuntimeError("Run migrations through anonsign (anonsign init), not the alembic CLI.")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
