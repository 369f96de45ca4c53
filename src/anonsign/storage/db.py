"""The engine, with the per-connection settings privacy and durability depend on.

A SQLite store is opened through SQLCipher (``sqlcipher3``, SQLAlchemy's ordinary
``sqlite`` dialect with that driver): the first statement on every connection is the
``PRAGMA key`` built by :mod:`anonsign.crypto.store` from the instance's store key, so
every page of the database and its WAL is encrypted (SECURITY.md, "what a powered-off
disk shows"). ``temp_store=MEMORY`` keeps sorts and temporary tables off the disk.

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

from anonsign.crypto.store import key_pragma
from anonsign.errors import AnonsignError

SQLITE_PRAGMAS = (
    # Sorting a large batch must not spill plaintext pages to a temporary file.
    "temp_store=MEMORY",
    "journal_mode=WAL",
    "synchronous=FULL",
    # Deleted content (a closed petition's pepper) is overwritten, not left in free pages.
    "secure_delete=ON",
    "foreign_keys=ON",
    "busy_timeout=30000",
)

_WRITE = "anonsign_write"


class StoreKeyMismatch(AnonsignError):
    """The database does not open with this instance's store key: is ANONSIGN_INSTANCE
    pointing at the right instance folder, and ANONSIGN_DATABASE_URL at its database?"""


def _configure_sqlite(engine: Engine, store_key: bytes | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, decide how transactions start.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if store_key is not None:
            # SQLCipher's own error lines (page numbers, "hmac check failed") are noise
            # beside the one-line error below.
            cursor.execute("PRAGMA cipher_log_level = NONE")
            cursor.execute(key_pragma(store_key))
            try:
                cursor.execute("SELECT count(*) FROM sqlite_master")
            except dbapi_conn.DatabaseError:
                cursor.close()
                raise StoreKeyMismatch() from None
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


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


#: Seconds a PostgreSQL checkout may wait for a pooled connection: with a pool of one per
#: thread it never waits; with a smaller one (ANONSIGN_DB_POOL_SIZE) a thread waits its
#: turn, for at most about as long as a request may take (gunicorn_app's timeout).
POOL_TIMEOUT_SECONDS = 30


def create_db_engine(url: str, store_key: bytes | None, pool_size: int | None = None) -> Engine:
    """An engine for ``url``: a SQLite file (encrypted under ``store_key`` unless it is
    None, which only conversion and benchmarks ask for) or PostgreSQL via psycopg 3.

    ``pool_size`` (PostgreSQL): exactly that many connections at most, no overflow, so a
    server's total is known in advance (anonsign.storage.pool); None for commands, which
    keep SQLAlchemy's default and use one or two.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        _create_private_file(make_url(url).database)
        options: dict[str, Any] = {"connect_args": {"timeout": 30}, "hide_parameters": True}
        if store_key is not None:
            from sqlcipher3 import dbapi2 as sqlcipher

            options["module"] = sqlcipher
        engine = create_engine(url, **options)
        _configure_sqlite(engine, store_key)
        return engine
    pool: dict[str, Any] = {}
    if pool_size is not None:
        pool = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": POOL_TIMEOUT_SECONDS}
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, **pool)


class Database:
    """Sessions for reading and for writing over one engine."""

    def __init__(self, url: str, store_key: bytes | None, pool_size: int | None = None) -> None:
        self.url = url
        self.engine = create_db_engine(url, store_key, pool_size)
        reader = self.engine
        if self.engine.dialect.name == "postgresql":
            # One snapshot per read: at PostgreSQL's default READ COMMITTED each statement
            # sees the latest commits, so a count of the log's leaves and then of the
            # pending signatures, with a batch published (by any host) between the two,
            # missed that batch. A read-only REPEATABLE READ transaction never fails for
            # serialization; SQLite's reads are snapshots already.
            reader = self.engine.execution_options(isolation_level="REPEATABLE READ")
        self._read = sessionmaker(reader, expire_on_commit=False)
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

    def scrub(self, *tables: str) -> bool:
        """Push deleted rows out of the places a database keeps old versions of pages.

        On SQLite, ``secure_delete`` already zeroes freed content in the main file; a
        TRUNCATE checkpoint copies the WAL into it and empties the WAL file, where the
        previous versions of changed pages (a pepper's row, a batch's pending rows in
        arrival order) would otherwise linger. It waits for readers on the busy timeout;
        False means it could not finish (the caller retries at its next batch). On
        PostgreSQL, ``VACUUM FULL`` rewrites ``tables`` without dead row versions; its
        write-ahead log is outside our reach (SECURITY.md).
        """
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
                return not busy
            if self.engine.dialect.name == "postgresql" and tables:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM FULL " + ", ".join(tables)
                )
        return True

    def dispose(self) -> None:
        self.engine.dispose()
