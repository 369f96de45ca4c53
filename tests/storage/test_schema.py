"""The schema: migrations match the models, and no table can hold what must not be kept."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import DateTime, Engine, inspect, text

from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.master import ServerKeys
from anonsign.instance import init_instance, load_server_keys
from anonsign.service import Service
from anonsign.storage.db import Database
from anonsign.storage.migrate import alembic_config, require_current, upgrade
from anonsign.storage.models import Base
from tests.conftest import make_petition

#: Every column the database may have. A new column must be added here *and* to
#: SECURITY.md's "What is stored" table, after asking whether it could betray a signer,
#: their device, or the order of signing.
ALLOWED_COLUMNS = {
    "petitions": {
        "id", "slug", "title", "text", "identifier_kind", "phone_region", "state", "salt",
        "wrapped_pepper", "argon2_time_cost", "argon2_memory_kib", "argon2_parallelism",
        "log_origin",
    },
    "petition_recipients": {"petition_id", "key_id", "name", "public_key"},
    "petition_texts": {"petition_id", "lang", "title", "text"},
    "pending_signatures": {"petition_id", "id", "dedup_key"},
    "pending_contacts": {"petition_id", "id", "sealed"},
    "log_leaves": {"petition_id", "idx", "entry"},
    "log_nodes": {"petition_id", "level", "idx", "hash"},
    "checkpoints": {"petition_id", "size", "note", "published_hour"},
    "cosignatures": {"petition_id", "size", "key_id", "witness", "line"},
    "sealed_contacts": {"petition_id", "id", "sealed"},
    "used_form_nonces": {"nonce", "expires_hour"},
    "alembic_version": {"version_num"},
}  # fmt: skip


def test_migrations_match_the_models(service: Service) -> None:
    with service.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_upgrade_is_idempotent_and_required_before_serving(database_url: str) -> None:
    db = Database(database_url, ServerKeys.generate().store)
    try:
        with pytest.raises(Exception, match="anonsign init"):
            require_current(db.engine)
        upgrade(db.engine)
        upgrade(db.engine)
        require_current(db.engine)
    finally:
        db.dispose()


def _petition_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("petitions")}


def test_migrations_0004_and_0005_keep_every_signature_of_an_older_database(
    settings: Settings, organizer: OrganizerSecretKey
) -> None:
    """A 0003 database: a receipts petition with a published and a pending signature.

    0004 drops receipts; 0005 turns the unpublished row of ``signatures`` into a pending
    row (and drops the table, whose published rows are the log's leaves).
    """
    init_instance(settings, dev=True)
    db = Database(settings.database_url, load_server_keys(settings).store)
    upgrade(db.engine, "0003")
    db.dispose()
    old = Service.open(settings)
    try:
        petition = make_petition(old, organizer, "had-receipts")
        with old.db.engine.begin() as conn:
            conn.execute(text("UPDATE petitions SET receipts = TRUE"))
            for key, logged in ((b"p" * 32, False), (b"l" * 32, True)):
                conn.execute(
                    text("INSERT INTO signatures VALUES (:p, :k, :logged)"),
                    {"p": petition.id, "k": key, "logged": logged},
                )
            conn.execute(
                text("INSERT INTO sealed_contacts VALUES (:p, :i, :s)"),
                {"p": petition.id, "i": b"i" * 16, "s": b"sealed before"},
            )
    finally:
        old.close_connections()

    new = Service.open(settings, migrate=True)
    try:
        assert "receipts" not in _petition_columns(new.db.engine)
        require_current(new.db.engine)
        if new.db.engine.dialect.name == "sqlite":  # off for the migration, on again after
            assert _pragma(new.db.engine, "foreign_keys") == 1
        assert new.petition("had-receipts").is_open
        assert next(s.signatures for s in new.summaries()) == 1  # the pending one
        new.sign("had-receipts", "after@example.org", "")
        new.publish("had-receipts")
        assert new.checkpoint("had-receipts").size == 2
        assert b"p" * 32 in new.leaves("had-receipts", 0, 2)
        assert new.sealed_contacts("had-receipts")[1] == [b"sealed before"]

        # The downgrade brings the column back, off for every petition.
        command.downgrade(alembic_config(new.db.engine), "0003")
        assert "receipts" in _petition_columns(new.db.engine)
        with new.db.engine.connect() as conn:
            assert conn.execute(text("SELECT receipts FROM petitions")).scalars().all() == [False]
            logged = conn.execute(text("SELECT logged FROM signatures")).scalars().all()
            assert sorted(logged) == [True, True]  # both are in the log by now
        upgrade(new.db.engine)
        assert new.petition("had-receipts").is_open
    finally:
        new.close_connections()


def test_no_column_can_hold_an_address_agent_or_time(service: Service) -> None:
    inspector = inspect(service.db.engine)
    tables = inspector.get_table_names()
    assert set(tables) == set(ALLOWED_COLUMNS)
    for table in tables:
        columns = inspector.get_columns(table)
        assert {c["name"] for c in columns} == ALLOWED_COLUMNS[table], table
        for column in columns:
            assert not isinstance(column["type"], DateTime), (table, column["name"])
            assert column.get("autoincrement") is not True, (table, column["name"])


def test_sqlite_tables_have_no_rowid(service: Service) -> None:
    if service.db.engine.dialect.name != "sqlite":
        pytest.skip("WITHOUT ROWID is SQLite's; PostgreSQL's caveat is in SECURITY.md")
    with service.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'table' AND name != 'alembic_version'"
            )
        ).all()
    assert {name for name, _ in rows} == {t.name for t in Base.metadata.sorted_tables}
    for name, sql in rows:
        assert "WITHOUT ROWID" in sql, name


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_privacy_and_durability_pragmas_on_every_connection(service: Service) -> None:
    engine = service.db.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    engine.dispose()  # a brand-new connection must get them too
    assert _pragma(engine, "secure_delete") == 1
    assert _pragma(engine, "foreign_keys") == 1
    assert _pragma(engine, "journal_mode") == "wal"
    assert _pragma(engine, "synchronous") == 2  # FULL
