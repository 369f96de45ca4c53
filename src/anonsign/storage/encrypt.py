"""Whether a SQLite store is encrypted, and turning a plain one into an encrypted one.

Instances made before the store was encrypted have a plain SQLite file; ``anonsign
init`` converts it once, with SQLCipher's ``sqlcipher_export`` into a new file under
the store key, then overwrites the plain file before removing it. The plain file's old
blocks may survive on the disk below the file system (SSD wear levelling, snapshots):
SECURITY.md says so, and the operator's encrypted volume is the answer to that.
"""

from __future__ import annotations

import enum
import os
import secrets
import sqlite3
from pathlib import Path

from anonsign.crypto.store import attach_statement

#: The first 16 bytes of every plain SQLite file; an SQLCipher file starts with its salt.
SQLITE_HEADER = b"SQLite format 3\x00"


class StoreState(enum.Enum):
    MISSING = "missing"
    PLAIN = "plain"
    ENCRYPTED = "encrypted"


def store_state(path: Path) -> StoreState:
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return StoreState.MISSING
    if not header:
        return StoreState.MISSING  # created empty (0600) before SQLite wrote anything
    return StoreState.PLAIN if header == SQLITE_HEADER else StoreState.ENCRYPTED


def _overwrite_and_remove(path: Path) -> None:
    if not path.exists():
        return
    size = path.stat().st_size
    with path.open("r+b") as handle:
        chunk = bytes(1 << 20)
        for _ in range(0, size, len(chunk)):
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()


def encrypt_in_place(path: Path, store_key: bytes) -> None:
    """Replace the plain SQLite file at ``path`` by an encrypted copy under ``store_key``.

    The server must be stopped (``init`` is run with it stopped). The copy is complete
    and synced before the plain file is touched, so a crash leaves one of the two whole.
    """
    from sqlcipher3 import dbapi2 as sqlcipher

    # Fold the WAL into the plain file first, so the export sees every commit and no
    # -wal file with plain pages is left behind.
    plain = sqlite3.connect(path, isolation_level=None)
    try:
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        plain.execute("PRAGMA journal_mode=DELETE")
    finally:
        plain.close()
    target = path.with_name(f".{path.name}.{secrets.token_hex(4)}.encrypting")
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        conn = sqlcipher.connect(str(path))
        try:
            conn.execute(attach_statement(str(target), store_key, "encrypted"))
            conn.execute("SELECT sqlcipher_export('encrypted')")
            conn.execute("DETACH DATABASE encrypted")
        finally:
            conn.close()
        with target.open("rb+") as handle:
            os.fsync(handle.fileno())
        # A second name for the plain file, so that its blocks can be overwritten after the
        # encrypted copy has taken its place in one atomic rename.
        plain_copy = path.with_name(f".{path.name}.{secrets.token_hex(4)}.plain")
        os.link(path, plain_copy)
        os.replace(target, path)
        _overwrite_and_remove(plain_copy)
        for suffix in ("-wal", "-shm", "-journal"):
            _overwrite_and_remove(path.with_name(path.name + suffix))
    finally:
        target.unlink(missing_ok=True)
