"""The memory of used sign-form tokens: random nonces and the hour they may be forgotten.

Why the database and not each process's memory: gunicorn runs several workers (and a
PostgreSQL deployment several hosts), and a set per process would let a token refused by
one worker pass in the next; the database is the one thing they all share, and the
primary key makes "already used" an atomic answer under any concurrency. Why not Redis:
SQLite deployments have none, and one more store is one more thing to seize.

Claiming a nonce is an insert that does nothing on a conflict; whether it returns the row
says whether this use is the first. It never reads or writes a signature's table, and the web
layer commits it on its own, before the identifier is read, so neither the database nor
its WAL ever holds a nonce and a signature in one transaction.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from anonsign.storage.models import UsedFormNonceRow


class UsedNonces:
    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, nonce: bytes, expires_hour: int) -> bool:
        """Remember ``nonce`` until ``expires_hour``; False if it was remembered already."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(UsedFormNonceRow)
            .values(nonce=nonce, expires_hour=expires_hour)
            .on_conflict_do_nothing(index_elements=["nonce"])
            # RETURNING, not the row count: psycopg's is -1 for this statement.
            .returning(UsedFormNonceRow.nonce)
        )
        return self.session.execute(statement).first() is not None

    def purge(self, current_hour: int) -> int:
        """Forget every nonce whose token is too old to be accepted in ``current_hour``."""
        result = cast(
            CursorResult[Any],
            self.session.execute(
                delete(UsedFormNonceRow).where(UsedFormNonceRow.expires_hour <= current_hour)
            ),
        )
        return result.rowcount
