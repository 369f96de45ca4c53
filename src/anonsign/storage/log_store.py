"""A petition's public log in the database: leaves, complete-subtree hashes, checkpoints.

Appending a batch costs O(batch · log n) hash work and writes: the compact range is
rebuilt from O(log n) stored subtree roots, never from the leaves. Proofs read O(log n)
stored nodes through :class:`DatabaseNodes`, which the Merkle module consumes as a
``NodeReader``. Nothing here decides *when* to publish (see ``anonsign.publisher``).

A batch streams: :meth:`LogStore.pending_chunks` reads the pending rows in order of
value, ``READ_CHUNK`` at a time (keyset pagination), :meth:`LogStore.append` pushes a
chunk's new entries through the frontier and writes its leaves and subtree hashes in one
executemany per table, and the chunk is let go. What a publication holds is one chunk's
rows, leaves and nodes, and SQLite's page cache: tens of MiB, whether the batch is a
thousand signatures or a million (``tests/storage/test_publish_memory.py``).

The pending table deliberately has no index on the dedup key: a signer's write would
land on the index page of its twin, and WAL frame headers (not encrypted) show which
pages each commit wrote, so a repeat could be told from a new signature. Each step is
therefore a scan, kept cheap by a window on the value: a batch of a million costs twenty
scans of the pending rows beside its three million inserts (``bench/publish_scale.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, insert, literal, select, text, tuple_
from sqlalchemy.orm import Session

from anonsign.audit.merkle import CompactRange, leaf_hash
from anonsign.audit.tiles import TILE_HEIGHT, TILE_WIDTH
from anonsign.errors import AnonsignError
from anonsign.storage.models import (
    CheckpointRow,
    CosignatureRow,
    LogLeafRow,
    LogNodeRow,
    PendingContactRow,
    PendingSignatureRow,
    SealedContactRow,
)
from anonsign.storage.repository import count_new_pending, new_pending

#: Rows per statement when rows are looked up, moved or deleted by key (bounded statement
#: size, well under every driver's limit on bound parameters).
CHUNK = 500
#: Pending rows read per step of a batch: with ``CHUNK``, what bounds the memory of a
#: publication, whatever the size of its batch (see the module docstring).
READ_CHUNK = 50_000
#: Pending rows from which a PostgreSQL batch first refreshes the table's statistics.
ANALYZE_ABOVE = 10_000
#: Dedup keys are read in windows of their first 8 bytes, as an integer below this.
_KEY_SPACE = 1 << 64


def _prefix(value: int) -> bytes:
    return value.to_bytes(8, "big")


class LogStoreError(AnonsignError):
    """The petition's stored log is inconsistent; restore it from a backup."""


@dataclass(frozen=True)
class PendingChunk:
    """One step of a batch: the new entries it publishes and the rows it drains."""

    #: New dedup keys, distinct, sorted by value (never by arrival), each after every
    #: entry of the chunks before it.
    entries: list[bytes]
    #: Every pending row read in this step, repeats included: exactly these are deleted.
    row_ids: list[bytes]


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

    def tile_hashes(self, level: int, index: int, width: int) -> bytes:
        """The hash tile ``(level, index)`` of ``width`` hashes (anonsign.audit.tiles):
        the stored subtree hashes at height ``8 * level``, one primary-key range."""
        first = index * TILE_WIDTH
        rows = self.session.scalars(
            select(LogNodeRow.hash)
            .where(
                LogNodeRow.petition_id == self.petition_id,
                LogNodeRow.level == TILE_HEIGHT * level,
                LogNodeRow.idx >= first,
                LogNodeRow.idx < first + width,
            )
            .order_by(LogNodeRow.idx)
        ).all()
        if len(rows) != width:
            raise LogStoreError(
                f"The log has {len(rows)} of the {width} hashes of tile {level}/{index}; "
                "it is damaged."
            )
        return b"".join(bytes(row) for row in rows)

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

    def has_new_pending(self) -> bool:
        """Whether any pending row holds an entry the log does not have yet."""
        return bool(self.session.scalar(select(exists().where(new_pending(self.petition_id)))))

    def pending_chunks(self, rows_per_chunk: int | None = None) -> Iterator[PendingChunk]:
        """The pending rows in order of value, at most ``rows_per_chunk`` at a time, with
        the new entries among them.

        Keyset pagination: each step reads the rows after the last one read, in (dedup
        key, row id) order (the row id breaks ties between repeats), so no row is read
        twice and the batch is never held whole. The pending table has no index on the
        dedup key (one would put a signer's write where its twin's is, see the module
        docstring), so each step is a scan; a ceiling on the value, one window of the
        key space sized from the count for about ``rows_per_chunk`` rows (dedup keys are
        uniform), keeps that scan's sort down to the window instead of the table. Past
        the window's rows, the next window starts.

        Repeats are neighbours in that order, and the last key of a chunk is carried to
        the next, so a repeat that straddles two chunks folds like any other. Entries
        already in the log are looked up per chunk in its entry index. Rows committed
        meanwhile (PostgreSQL signers do not wait for the publisher) are read if they
        sort after the last row read, and otherwise wait for the next batch: either way
        every entry comes out in order, and only rows that were read are drained.
        """
        rows_per_chunk = rows_per_chunk or READ_CHUNK
        total = self.pending_rows()
        self._refresh_statistics(total)
        # Windows of the first 8 bytes, for 9/10 of a chunk each: rarely over the limit,
        # and correct whatever the spread (a full window just takes another step).
        width = max(1, (_KEY_SPACE * rows_per_chunk * 9) // (10 * max(total, 1)))
        ceiling = min(width, _KEY_SPACE)
        after: tuple[bytes, bytes] | None = None
        previous: bytes | None = None
        while True:
            query = select(PendingSignatureRow.id, PendingSignatureRow.dedup_key).where(
                PendingSignatureRow.petition_id == self.petition_id
            )
            if after is not None:
                query = query.where(
                    tuple_(PendingSignatureRow.dedup_key, PendingSignatureRow.id)
                    > tuple_(literal(after[0]), literal(after[1]))
                )
            if ceiling < _KEY_SPACE:
                query = query.where(PendingSignatureRow.dedup_key < _prefix(ceiling))
            rows = self.session.execute(
                query.order_by(PendingSignatureRow.dedup_key, PendingSignatureRow.id).limit(
                    rows_per_chunk
                )
            ).all()
            if rows:
                distinct: list[bytes] = []
                for _, value in rows:
                    key = bytes(value)
                    if key != previous:
                        distinct.append(key)
                    previous = key
                published = self._published_among(distinct)
                yield PendingChunk(
                    entries=[key for key in distinct if key not in published],
                    row_ids=[bytes(row_id) for row_id, _ in rows],
                )
            if len(rows) == rows_per_chunk:
                after = (bytes(rows[-1][1]), bytes(rows[-1][0]))
            elif ceiling >= _KEY_SPACE:
                return
            else:
                # Every key of this window has been read: the next begins at its ceiling
                # (an 8-byte prefix sorts before every 32-byte key that starts with it).
                after = (_prefix(ceiling), b"")
                ceiling = min(ceiling + width, _KEY_SPACE)

    def _refresh_statistics(self, pending: int) -> None:
        """On PostgreSQL, ANALYZE the pending table before a large batch drains it.

        Rows arrive far faster than autovacuum analyzes them, and without statistics the
        planner serves ``DELETE ... WHERE petition_id = ? AND id IN (500 ids)`` from the
        primary key's first column alone, reading every pending row of the petition for
        each chunk of 500: a batch of a million made two thousand passes over a million
        rows (bench/vacuum_pause.py). ANALYZE samples a fixed number of rows, takes no
        lock that a signer's insert waits for, and its statistics hold for this
        transaction's own plans.
        """
        if pending >= ANALYZE_ABOVE and self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text(f"ANALYZE {PendingSignatureRow.__tablename__}"))

    def pending_rows(self) -> int:
        """Pending rows of the petition, repeats included."""
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(PendingSignatureRow)
                .where(PendingSignatureRow.petition_id == self.petition_id)
            )
            or 0
        )

    def _published_among(self, keys: Sequence[bytes]) -> set[bytes]:
        """Which of ``keys`` (sorted, distinct) the log holds already.

        One range read of the entry index first: while the log is small beside the
        batch (a batch of a million at close), the chunk's range holds few published
        entries, and reading them beats a lookup per key. Only when the range holds more
        entries than there are keys is each key looked up, ``CHUNK`` at a time.
        """
        if not keys:
            return set()
        in_range = self.session.scalars(
            select(LogLeafRow.entry)
            .where(
                LogLeafRow.petition_id == self.petition_id,
                LogLeafRow.entry >= keys[0],
                LogLeafRow.entry <= keys[-1],
            )
            .order_by(LogLeafRow.entry)
            .limit(len(keys) + 1)
        ).all()
        if len(in_range) <= len(keys):
            return {bytes(e) for e in in_range}.intersection(keys)
        published: set[bytes] = set()
        for start in range(0, len(keys), CHUNK):
            published.update(
                bytes(e)
                for e in self.session.scalars(
                    select(LogLeafRow.entry).where(
                        LogLeafRow.petition_id == self.petition_id,
                        LogLeafRow.entry.in_(keys[start : start + CHUNK]),
                    )
                )
            )
        return published

    def pending_reaches(self, at_least: int) -> bool:
        """Whether at least ``at_least`` (1 or more) distinct new entries wait.

        What the publish policy asks on every round of the background publisher. The
        rows are counted first (one scan, no memory): fewer rows than ``at_least`` hold
        fewer entries, which is always the answer when a petition publishes only at close
        (``ANONSIGN_PUBLISH_MIN`` above the expected count). Only otherwise are distinct
        entries counted, and that count (for which the database keeps a set) stops at
        ``at_least``: memory bounded by the policy, never by what is pending.
        """
        if self.pending_rows() < at_least:
            return False
        if at_least <= 1:
            return self.has_new_pending()
        distinct = (
            select(PendingSignatureRow.dedup_key)
            .where(new_pending(self.petition_id))
            .distinct()
            .limit(at_least)
            .subquery()
        )
        found = self.session.scalar(select(func.count()).select_from(distinct)) or 0
        return found >= at_least

    def pending_count(self) -> int:
        """Distinct new entries waiting (what the publish policy counts)."""
        return count_new_pending(self.session, self.petition_id)

    # --- writing -----------------------------------------------------------------------

    def append(self, tree: CompactRange, entries: Sequence[bytes]) -> None:
        """Append one chunk of ``entries`` (sorted, after every entry of ``tree``) to the
        log whose frontier is ``tree``, writing its leaves and every subtree it completes.

        ``tree`` moves on in place; the rows go in one executemany per table, so memory
        is bounded by the chunk, never by the batch.
        """
        leaf_rows: list[tuple[str, int, bytes]] = []
        node_rows: list[tuple[str, int, int, bytes]] = []
        for entry in entries:
            leaf_rows.append((self.petition_id, tree.size, entry))
            for level, index, value in tree.append(leaf_hash(entry)):
                node_rows.append((self.petition_id, level, index, value))
        self._insert_many("log_leaves", ("petition_id", "idx", "entry"), leaf_rows)
        self._insert_many("log_nodes", ("petition_id", "level", "idx", "hash"), node_rows)

    def _insert_many(
        self, table: str, columns: tuple[str, ...], rows: Sequence[tuple[object, ...]]
    ) -> None:
        """One executemany at the driver: SQLAlchemy's per-row parameter handling costs
        several times the insert itself, and a batch of a million makes three million rows.
        """
        if not rows:
            return
        conn = self.session.connection()
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - names are constants
            f"VALUES ({', '.join([mark] * len(columns))})",
            list(rows),
        )

    def drain_chunk(self, chunk: PendingChunk) -> None:
        """Delete the rows of a chunk just integrated, or leave that to :meth:`end_drain`.

        On PostgreSQL signers commit while the batch runs, so exactly the rows read go,
        by id. On SQLite the publisher's ``BEGIN IMMEDIATE`` holds the only write lock:
        every pending row at the end was read, and deleting them then, in the table's own
        order, touches each page once (by id here, in value order, a batch larger than
        the page cache would rewrite every page once per chunk).
        """
        if self._signers_wait:
            return
        ids = sorted(chunk.row_ids)
        for start in range(0, len(ids), CHUNK):
            self.session.execute(
                delete(PendingSignatureRow).where(
                    PendingSignatureRow.petition_id == self.petition_id,
                    PendingSignatureRow.id.in_(ids[start : start + CHUNK]),
                )
            )

    def end_drain(self) -> None:
        """Finish a batch's drain: SQLite's pending rows, then every pending contact."""
        if self._signers_wait:
            while True:
                # Up to READ_CHUNK rows at a time in key order, so the statement never
                # collects the whole batch's keys.
                bound = self.session.scalar(
                    select(PendingSignatureRow.id)
                    .where(PendingSignatureRow.petition_id == self.petition_id)
                    .order_by(PendingSignatureRow.id)
                    .offset(READ_CHUNK - 1)
                    .limit(1)
                )
                query = delete(PendingSignatureRow).where(
                    PendingSignatureRow.petition_id == self.petition_id
                )
                if bound is None:
                    self.session.execute(query)
                    break
                self.session.execute(query.where(PendingSignatureRow.id <= bound))
        self.drain_contacts()

    @property
    def _signers_wait(self) -> bool:
        return self.session.get_bind().dialect.name == "sqlite"

    def drain_contacts(self) -> None:
        """Move the pending contacts to ``sealed_contacts`` in the order of their ids.

        ``CHUNK`` contacts at a time, the next ones after the last id moved, so memory is
        bounded by the chunk. ``secure_delete`` zeroes what is deleted, so after the batch
        (and the WAL checkpoint that follows it) the pages no longer hold the order of its
        arrivals.
        """
        after: bytes | None = None
        while True:
            query = select(PendingContactRow.id, PendingContactRow.sealed).where(
                PendingContactRow.petition_id == self.petition_id
            )
            if after is not None:
                query = query.where(PendingContactRow.id > after)
            rows = self.session.execute(query.order_by(PendingContactRow.id).limit(CHUNK)).all()
            if not rows:
                return
            ids = [bytes(row_id) for row_id, _ in rows]
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
                    PendingContactRow.id.in_(ids),
                )
            )
            after = ids[-1]

    def cosignatures(self, size: int) -> dict[bytes, str]:
        """The witnesses' cosignature lines on the checkpoint of ``size``, by key ID."""
        rows = self.session.execute(
            select(CosignatureRow.key_id, CosignatureRow.line)
            .where(CosignatureRow.petition_id == self.petition_id, CosignatureRow.size == size)
            .order_by(CosignatureRow.witness, CosignatureRow.key_id)
        ).all()
        return {bytes(key_id): line for key_id, line in rows}

    def add_cosignature(self, size: int, key_id: bytes, witness: str, line: str) -> None:
        """Keep a verified cosignature line (the first one per witness and size)."""
        exists_already = self.session.get(CosignatureRow, (self.petition_id, size, key_id))
        if exists_already is None:
            self.session.add(
                CosignatureRow(
                    petition_id=self.petition_id,
                    size=size,
                    key_id=key_id,
                    witness=witness,
                    line=line,
                )
            )
            self.session.flush()

    def add_checkpoint(self, size: int, note: str, published_hour: int) -> None:
        self.session.add(
            CheckpointRow(
                petition_id=self.petition_id, size=size, note=note, published_hour=published_hour
            )
        )
        self.session.flush()
