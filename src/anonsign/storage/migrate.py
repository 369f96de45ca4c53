"""Schema migrations with Alembic, run from the package (no alembic.ini to find).

``anonsign init`` upgrades to the newest revision; the test suite checks that the
migrations produce exactly the tables the models describe.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def require_current(engine: Engine) -> None:
    """Refuse to serve a database whose schema is missing or older than this code."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from anonsign.errors import NotInitialized

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise NotInitialized(
            "The database schema is missing or out of date; run `anonsign init` first."
        )
