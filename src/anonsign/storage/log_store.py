"""A petition's public log in the database: leaves, complete-subtree hashes, checkpoints.

Appending a batch costs O(batch · log n) hash work and writes: the compact range is
rebuilt from O(log n) stored subtree roots, never from the leaves. Proofs read O(log n)
stored nodes through :class:`DatabaseNodes`, which the Merkle module consumes as a
``NodeReader``. Nothing here decides *when* to publish (see ``anonsign.publisher``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from anonsign.audit.merkle import CompactRange, leaf_hash
from anonsign.errors import AnonsignError
from anonsign.storage.models import CheckpointRow, LogLeafRow, LogNodeRow, SignatureRow


class LogStoreError(AnonsignError):
    """The petition's stored log is inconsistent; restore it from a backup."""


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    note: str
    published_hour: int


class DatabaseNodes:
    """Complete-subtree hashes of one petition, read on demand."""

    def __init__(self, session: Session, petition_id: str) -> None:
        self.session = session
        self.petition_id = petition_id

    def node(self, level: int, index: int) -> bytes:
        value = self.session.scalar(
            select(LogNodeRow.hash).where(
                LogNodeRow.petition_id == self.petition_id,
                LogNodeRow.level == level,
                LogNodeRow.idx == index,
            )
        )
        if value is None:
            raise LogStoreError(
                f"The log has no subtree hash at level {level}, index {index}; it is damaged."
            )
        return bytes(value)


class LogStore:
    def __init__(self, session: Session, petition_id: str) -> None:
        self.session = session
        self.petition_id = petition_id
        self.nodes = DatabaseNodes(session, petition_id)

    # --- reading -----------------------------------------------------------------------

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self.session.scalar(
            select(CheckpointRow)
            .where(CheckpointRow.petition_id == self.petition_id)
            .order_by(CheckpointRow.size.desc())
            .limit(1)
        )
        if row is None:
            return None
        return StoredCheckpoint(row.size, row.note, row.published_hour)

    def size(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(LogLeafRow)
                .where(LogLeafRow.petition_id == self.petition_id)
            )
            or 0
        )

    def leaves(self, start: int, end: int) -> list[bytes]:
        rows = self.session.scalars(
            select(LogLeafRow.entry)
            .where(
                LogLeafRow.petition_id == self.petition_id,
                LogLeafRow.idx >= start,
                LogLeafRow.idx < end,
            )
            .order_by(LogLeafRow.idx)
        )
        return [bytes(r) for r in rows]

    def index_of(self, entry: bytes) -> int | None:
        return self.session.scalar(
            select(LogLeafRow.idx).where(
                LogLeafRow.petition_id == self.petition_id, LogLeafRow.entry == entry
            )
        )

    def compact_range(self, size: int) -> CompactRange:
        """The frontier of the first ``size`` leaves, from O(log n) stored subtree roots."""
        frontier: list[bytes] = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size & (1 << level):
                frontier.append(self.nodes.node(level, start >> level))
                start += 1 << level
        return CompactRange.from_list(size, frontier)

    def pending(self) -> list[bytes]:
        """Accepted signatures not yet in the log, sorted by value (never by arrival)."""
        rows = self.session.scalars(
            select(SignatureRow.dedup_key)
            .where(SignatureRow.petition_id == self.petition_id, SignatureRow.logged.is_(False))
            .order_by(SignatureRow.dedup_key)
        )
        return [bytes(r) for r in rows]

    def pending_count(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(SignatureRow)
                .where(
                    SignatureRow.petition_id == self.petition_id,
                    SignatureRow.logged.is_(False),
                )
            )
            or 0
        )

    # --- writing -----------------------------------------------------------------------

    def append(self, size: int, entries: Sequence[bytes]) -> CompactRange:
        """Append ``entries`` after the first ``size`` leaves; mark them logged."""
        tree = self.compact_range(size)
        leaf_rows, node_rows = [], []
        for offset, entry in enumerate(entries):
            leaf_rows.append(
                {"petition_id": self.petition_id, "idx": size + offset, "entry": entry}
            )
            for level, index, value in tree.append(leaf_hash(entry)):
                node_rows.append(
                    {"petition_id": self.petition_id, "level": level, "idx": index, "hash": value}
                )
        if leaf_rows:
            self.session.execute(insert(LogLeafRow), leaf_rows)
            self.session.execute(insert(LogNodeRow), node_rows)
            for chunk_start in range(0, len(entries), 500):
                chunk = list(entries[chunk_start : chunk_start + 500])
                self.session.execute(
                    update(SignatureRow)
                    .where(
                        SignatureRow.petition_id == self.petition_id,
                        SignatureRow.dedup_key.in_(chunk),
                    )
                    .values(logged=True)
                )
        return tree

    def add_checkpoint(self, size: int, note: str, published_hour: int) -> None:
        self.session.add(
            CheckpointRow(
                petition_id=self.petition_id, size=size, note=note, published_hour=published_hour
            )
        )
        self.session.flush()
