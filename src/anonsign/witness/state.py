"""What a witness keeps: the logs it witnesses and the latest checkpoint it cosigned for
each, in one SQLite file of its own (stdlib ``sqlite3``; a witness is a small program
another organisation runs, with nothing of anonsign's database).

The check of the old size and the write of the new one happen in one ``BEGIN
IMMEDIATE`` transaction, so two requests at once can never roll the record back (the race
c2sp.org/tlog-witness spells out). Refused checkpoints whose log signature verified are
kept as evidence (``refused``): a fork signed by the log's own key is proof of its
misbehaviour. Nothing here records when anything happened.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from anonsign.errors import AnonsignError

__all__ = ["LogRecord", "WitnessState", "WitnessStateError"]

#: Evidence kept per log: the latest refusals (only the log's key can add any).
MAX_REFUSED_PER_LOG = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    verifier_key TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    root BLOB
);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    reason TEXT NOT NULL,
    request BLOB NOT NULL
);
"""


class WitnessStateError(AnonsignError):
    """The witness's state file cannot be used."""


@dataclass(frozen=True)
class LogRecord:
    origin: str
    verifier_key: str
    #: The latest size cosigned (0: none yet), and its root (None: none yet).
    size: int
    root: bytes | None


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def log(self, origin: str) -> LogRecord | None:
        row = self.conn.execute(
            "SELECT origin, verifier_key, size, root FROM logs WHERE origin = ?", (origin,)
        ).fetchone()
        return None if row is None else LogRecord(row[0], row[1], row[2], row[3])

    def advance(self, origin: str, size: int, root: bytes) -> None:
        self.conn.execute(
            "UPDATE logs SET size = ?, root = ? WHERE origin = ?", (size, root, origin)
        )

    def refuse(self, origin: str, reason: str, request: bytes) -> None:
        self.conn.execute(
            "INSERT INTO refused (origin, reason, request) VALUES (?, ?, ?)",
            (origin, reason, request),
        )
        self.conn.execute(
            "DELETE FROM refused WHERE origin = ? AND id NOT IN "
            "(SELECT id FROM refused WHERE origin = ? ORDER BY id DESC LIMIT ?)",
            (origin, origin, MAX_REFUSED_PER_LOG),
        )


class WitnessState:
    """The state file; one connection per call, so it is safe across threads and workers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise WitnessStateError(f"Cannot use the witness state {path}: {exc}.") from None

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # a cosigned size survives a crash
        return conn

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        """One write transaction: whatever is read in it stays true until it commits."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Transaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def add_log(self, origin: str, verifier_key: str) -> bool:
        """Witness ``origin``, signed by ``verifier_key``; False if it was already witnessed
        (its key is then replaced and its size kept)."""
        with self.transaction() as tx:
            known = tx.log(origin) is not None
            tx.conn.execute(
                "INSERT INTO logs (origin, verifier_key) VALUES (?, ?) "
                "ON CONFLICT (origin) DO UPDATE SET verifier_key = excluded.verifier_key",
                (origin, verifier_key),
            )
        return not known

    def logs(self) -> list[LogRecord]:
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT origin, verifier_key, size, root FROM logs ORDER BY origin"
            ).fetchall()
        finally:
            conn.close()
        return [LogRecord(*row) for row in rows]

    def refused(self, origin: str) -> list[tuple[str, bytes]]:
        """The evidence kept for ``origin``: (reason, request body), oldest first."""
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT reason, request FROM refused WHERE origin = ? ORDER BY id", (origin,)
            ).fetchall()
        finally:
            conn.close()
        return [(reason, bytes(request)) for reason, request in rows]
