"""A petition's public log in the database: leaves, complete-subtree hashes, checkpoints.

Appending a batch costs O(batch · log n) hash work and writes: the compact range is
rebuilt from O(log n) stored subtree roots, never from the leaves. Proofs read O(log n)
stored nodes through :class:`DatabaseNodes`, which the Merkle module consumes as a
``NodeReader``. Nothing here decides *when* to publish (see ``anonsign.publisher``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from anonsign.audit.merkle import CompactRange, leaf_hash
from anonsign.errors import AnonsignError
from anonsign.storage.models import (
    CheckpointRow,
    LogLeafRow,
    LogNodeRow,
    PendingContactRow,
    PendingSignatureRow,
    SealedContactRow,
)
from anonsign.storage.repository import count_new_pending

#: Rows per statement when a batch is moved or deleted (bounded statement size).
CHUNK = 500


class LogStoreError(AnonsignError):
    """The petition's stored log is inconsistent; restore it from a backup."""


@dataclass(frozen=True)
class PendingBatch:
    """What the next batch publishes (``entries``) and which rows it drains."""

    #: New dedup keys, distinct, sorted by value (never by arrival).
    entries: list[bytes]
    #: Every pending row read, repeats included: exactly these are deleted.
    row_ids: list[bytes]
    #: Every pending contact read: exactly these move to ``sealed_contacts``.
    contact_ids: list[bytes]

    @property
    def empty(self) -> bool:
        return not (self.row_ids or self.contact_ids)


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

    def pending_batch(self) -> PendingBatch:
        """The rows waiting for a batch, and the distinct new entries among them.

        Rows are named by id so that draining deletes exactly what was read: a signature
        committed meanwhile (PostgreSQL signers do not wait for the publisher) stays.
        """
        rows = self.session.execute(
            select(PendingSignatureRow.id, PendingSignatureRow.dedup_key).where(
                PendingSignatureRow.petition_id == self.petition_id
            )
        ).all()
        published: set[bytes] = set()
        keys = sorted({bytes(key) for _, key in rows})
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            published.update(
                bytes(e)
                for e in self.session.scalars(
                    select(LogLeafRow.entry).where(
                        LogLeafRow.petition_id == self.petition_id, LogLeafRow.entry.in_(chunk)
                    )
                )
            )
        contacts = self.session.scalars(
            select(PendingContactRow.id).where(PendingContactRow.petition_id == self.petition_id)
        )
        return PendingBatch(
            entries=[key for key in keys if key not in published],
            row_ids=[bytes(row_id) for row_id, _ in rows],
            contact_ids=sorted(bytes(c) for c in contacts),
        )

    def pending_count(self) -> int:
        """Distinct new entries waiting (what the publish policy counts)."""
        return count_new_pending(self.session, self.petition_id)

    # --- writing -----------------------------------------------------------------------

    def append(self, size: int, entries: Sequence[bytes]) -> CompactRange:
        """Append ``entries`` after the first ``size`` leaves (they are in sorted order)."""
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
        return tree

    def drain(self, batch: PendingBatch) -> None:
        """Delete the batch's pending rows; move its contacts in the order of their ids.

        ``secure_delete`` zeroes what is deleted, so after the batch (and the WAL
        checkpoint that follows it) the pages no longer hold the order of its arrivals.
        """
        ids = batch.contact_ids
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = self.session.execute(
                select(PendingContactRow.id, PendingContactRow.sealed)
                .where(
                    PendingContactRow.petition_id == self.petition_id,
                    PendingContactRow.id.in_(chunk),
                )
                .order_by(PendingContactRow.id)
            ).all()
            self.session.execute(
                insert(SealedContactRow),
                [
                    {"petition_id": self.petition_id, "id": row_id, "sealed": sealed}
                    for row_id, sealed in rows
                ],
            )
            self.session.execute(
                delete(PendingContactRow).where(
                    PendingContactRow.petition_id == self.petition_id,
                    PendingContactRow.id.in_(chunk),
                )
            )
        for start in range(0, len(batch.row_ids), CHUNK):
            self.session.execute(
                delete(PendingSignatureRow).where(
                    PendingSignatureRow.petition_id == self.petition_id,
                    PendingSignatureRow.id.in_(batch.row_ids[start : start + CHUNK]),
                )
            )

    def add_checkpoint(self, size: int, note: str, published_hour: int) -> None:
        self.session.add(
            CheckpointRow(
                petition_id=self.petition_id, size=size, note=note, published_hour=published_hour
            )
        )
        self.session.flush()
