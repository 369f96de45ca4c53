"""The engine, with the per-connection settings privacy and durability depend on.

SQLite forgets most pragmas when a connection closes (``secure_delete`` is not stored
in the file), so they are set on every new connection. ``synchronous=FULL`` in WAL mode
makes a commit durable before the thank-you page is sent: an accepted signature
survives a crash right after its answer. Write transactions start with
``BEGIN IMMEDIATE`` so that concurrent signers queue on the busy timeout instead of
failing on a lock upgrade.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=FULL",
    # Deleted content (a closed petition's pepper) is overwritten, not left in free pages.
    "secure_delete=ON",
    "foreign_keys=ON",
    "busy_timeout=30000",
)

_WRITE = "anonsign_write"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, decide how transactions start.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute("PRAGMA " + pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _create_private_file(database: str | None) -> None:
    """Create the SQLite file 0600 in a 0700 folder before SQLite does (with the umask).

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def create_db_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite file or PostgreSQL via psycopg 3)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        _create_private_file(make_url(url).database)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


class Database:
    """Sessions for reading and for writing over one engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error."""
        with self._write() as session, session.begin():
            yield session

    def scrub(self) -> None:
        """Push deleted secrets out of the places a database keeps old versions.

        On SQLite, ``secure_delete`` already zeroes freed content in the main file; a
        TRUNCATE checkpoint copies the WAL into it and empties the WAL file, where the
        previous version of a changed page (a pepper's row) would otherwise linger. On
        PostgreSQL, ``VACUUM FULL`` rewrites the petitions table without dead row
        versions; its write-ahead log is outside our reach (SECURITY.md).
        """
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            elif self.engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM FULL petitions"
                )

    def dispose(self) -> None:
        self.engine.dispose()
