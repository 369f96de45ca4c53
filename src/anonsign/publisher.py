"""When and how a petition's pending signatures enter its public log.

The count must not move with each signature, or watching it would tell an observer that
the person they just saw at a keyboard signed (SECURITY.md, "batched publication"). So
pending signatures are integrated only when at least ``publish_min`` new ones are
waiting *and* ``publish_interval`` seconds have passed since the hour of the last
checkpoint; within a batch, entries are sorted by value, never by arrival, and repeats
are folded away. A batch drains the pending tables (its contacts move to
``sealed_contacts`` by random id), so the order in which its signatures arrived is kept
nowhere once it is published. Closing a petition publishes whatever is pending.

Publishing runs inside one database transaction that holds the petition's row lock
(``BEGIN IMMEDIATE`` on SQLite, ``FOR NO KEY UPDATE`` on PostgreSQL), so any number of
processes may run it at once: one integrates the batch, the others find nothing to do.
Before signing, the new tree is checked to extend the last signed one, so the log never
signs two inconsistent checkpoints.

A batch is streamed, never held: chunks of pending rows come out of the database in
order of value, each chunk's new entries go through the frontier (the compact range)
into the log, and its rows are drained, all in that one transaction, so a crash half-way
rolls every chunk back and leaves the log as it was. Memory is bounded by the chunk
(``anonsign.storage.log_store.READ_CHUNK``), not by the batch: a batch of a million,
which "publish only at close" makes, costs what a batch of fifty thousand does.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from anonsign.audit.checkpoint import Checkpoint
from anonsign.audit.merkle import empty_root
from anonsign.crypto.notes import LogSigner
from anonsign.domain.petitions import Petition
from anonsign.errors import AnonsignError
from anonsign.storage.log_store import LogStore, StoredCheckpoint

log = logging.getLogger(__name__)

SECONDS_PER_HOUR = 3600


class InconsistentLog(AnonsignError):
    """The stored log no longer matches its last signed checkpoint; publishing stopped."""


@dataclass(frozen=True)
class PublishPolicy:
    #: Fewest pending signatures worth a new checkpoint (0 or 1: publish at once).
    min_pending: int
    #: Seconds since the hour of the last checkpoint before the next may be signed.
    interval_seconds: int

    @property
    def batch_size(self) -> int:
        """Fewest new entries a batch may publish (1 at least: no empty checkpoint)."""
        return max(self.min_pending, 1)

    def due(self, enough: bool, last: StoredCheckpoint | None, now: float) -> bool:
        """Whether a batch is due, given whether ``enough`` new entries wait for one."""
        if not enough:
            return False
        if last is None or self.interval_seconds <= 0:
            return True
        return now - last.published_hour * SECONDS_PER_HOUR >= self.interval_seconds


def hour_of(now: float) -> int:
    return int(now // SECONDS_PER_HOUR)


def checkpoint_of(stored: StoredCheckpoint, signer: LogSigner) -> Checkpoint:
    return Checkpoint.parse(signer.verifier().open(stored.note))


def publish(
    session: Session,
    petition: Petition,
    signer: LogSigner,
    *,
    policy: PublishPolicy | None,
    now: float | None = None,
) -> StoredCheckpoint | None:
    """Integrate pending signatures if due (always, when ``policy`` is None).

    The caller holds the petition's row lock in ``session``'s transaction. Returns the
    new checkpoint, or None when nothing was published.
    """
    now = time.time() if now is None else now
    store = LogStore(session, petition.id)
    last = store.latest_checkpoint()
    if last is None:
        return _sign(store, petition, signer, Checkpoint(petition.log_origin, 0, empty_root()), now)
    if policy is not None and not policy.due(store.pending_reaches(policy.batch_size), last, now):
        return None
    if policy is not None and not store.has_new_pending():
        return None
    # Forced (closing, or by hand), the batch runs even when nothing new is pending, so
    # the repeats and contacts left since the last one are drained too and nothing
    # pending outlives the petition. It is the same walk as any batch, never a bare
    # drain: on PostgreSQL a signer may commit a new entry after "nothing new" was seen,
    # and the walk integrates what it reads before deleting it.
    previous = checkpoint_of(last, signer)
    tree = store.compact_range(last.size)
    if tree.root() != previous.root:
        raise InconsistentLog(
            f"The stored log of {petition.slug!r} does not match its checkpoint of size "
            f"{last.size}; refusing to sign a new one."
        )
    # One chunk at a time, in order of value: its new entries go through the frontier
    # into the log, its rows (repeats included) are deleted, and it is let go.
    for chunk in store.pending_chunks():
        store.append(tree, chunk.entries)
        store.drain_chunk(chunk)
    store.end_drain()
    if tree.size == last.size:
        return None  # only repeats were pending: nothing new to sign
    return _sign(
        store, petition, signer, Checkpoint(petition.log_origin, tree.size, tree.root()), now
    )


def _sign(
    store: LogStore, petition: Petition, signer: LogSigner, checkpoint: Checkpoint, now: float
) -> StoredCheckpoint:
    note = signer.sign(checkpoint.to_text())
    stored = StoredCheckpoint(checkpoint.size, note, hour_of(now))
    store.add_checkpoint(stored.size, stored.note, stored.published_hour)
    log.info("published a checkpoint of size %d for %s", checkpoint.size, petition.slug)
    return stored


class PublisherThread(threading.Thread):
    """Publishes due batches in the background of a server process.

    Every worker may run one: the database lock makes them take turns. The wait between
    rounds is jittered so workers do not wake together.
    """

    def __init__(self, publish_due: object, period_seconds: float) -> None:
        super().__init__(name="anonsign-publisher", daemon=True)
        self._publish_due = publish_due
        self._period = period_seconds
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._period * random.uniform(0.5, 1.5)):  # noqa: S311 - jitter, not a secret
            try:
                self._publish_due()  # type: ignore[operator]
            except Exception as exc:  # keep the thread alive; the next round retries
                log.error("publishing failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self._stop_event.set()
