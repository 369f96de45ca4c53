"""Streaming publication on SQLite and PostgreSQL: chunk boundaries change nothing.

With chunks of a few rows, repeats straddle chunks and windows; the log must be the one
a whole-batch publication makes (sorted by value, each entry once, published entries
never again), and the pending tables must be empty, exactly as with one chunk.
"""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select, update

from anonsign.audit.merkle import CompactRange, leaf_hash, root
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.publisher import InconsistentLog
from anonsign.service import Service
from anonsign.storage import log_store
from anonsign.storage.log_store import LogStore
from anonsign.storage.models import (
    LogLeafRow,
    LogNodeRow,
    PendingContactRow,
    PendingSignatureRow,
    SealedContactRow,
)
from tests.conftest import add_pending, make_petition


def _add_pending(service: Service, petition_id: str, keys: list[bytes]) -> None:
    add_pending(service, petition_id, keys, contacts=len(keys) // 3)


def _published(service: Service, slug: str) -> list[bytes]:
    return service.leaves(slug, 0, service.checkpoint(slug).size)


@pytest.mark.parametrize("rows_per_chunk", [1, 3, 7, 1000])
def test_small_chunks_publish_the_whole_batch_sorted_and_folded(
    service: Service,
    organizer: OrganizerSecretKey,
    monkeypatch: pytest.MonkeyPatch,
    rows_per_chunk: int,
) -> None:
    monkeypatch.setattr(log_store, "READ_CHUNK", rows_per_chunk)
    petition = make_petition(service, organizer, "stream", IdentifierKind.TEXT)
    draws = random.Random(5)  # noqa: S311 - test data
    first = [draws.randbytes(32) for _ in range(20)]
    _add_pending(service, petition.id, first + first[:5])
    assert service.publish("stream") is not None
    # Runs of one key longer than a chunk, keys at both ends of the key space, repeats
    # of published entries, and keys that share their first 8 bytes.
    shared = draws.randbytes(8)
    new = [draws.randbytes(32) for _ in range(40)]
    new += [bytes(32), b"\xff" * 32, shared + bytes(24), shared + b"\xff" * 24]
    batch = new + [new[3]] * 9 + [new[-1]] * 4 + first[::3] + [bytes(32)] * 3
    draws.shuffle(batch)
    _add_pending(service, petition.id, batch)

    checkpoint = service.publish("stream")

    expected = sorted(first) + sorted(set(new))
    assert checkpoint is not None
    assert checkpoint.size == len(expected)
    assert _published(service, "stream") == expected
    assert service.checkpoint("stream").size == len(expected)
    with service.db.reading() as session:
        assert LogStore(session, petition.id).compact_range(len(expected)).root() == root(
            leaf_hash(e) for e in expected
        )
        for table in (PendingSignatureRow, PendingContactRow):
            assert session.scalar(select(func.count()).select_from(table)) == 0
        sealed = session.scalar(select(func.count()).select_from(SealedContactRow))
        assert sealed == len(first + first[:5]) // 3 + len(batch) // 3


def test_a_forced_publication_of_only_repeats_drains_them_and_signs_nothing(
    service: Service, organizer: OrganizerSecretKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_store, "READ_CHUNK", 2)
    petition = make_petition(service, organizer, "repeats", IdentifierKind.TEXT)
    keys = [bytes([i]) * 32 for i in range(5)]
    _add_pending(service, petition.id, keys)
    assert service.publish("repeats") is not None
    _add_pending(service, petition.id, keys * 2)
    assert service.publish("repeats") is None
    assert _published(service, "repeats") == keys
    with service.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(PendingSignatureRow)) == 0


def test_the_policy_counts_distinct_new_entries_up_to_the_batch_size(
    service: Service, organizer: OrganizerSecretKey
) -> None:
    petition = make_petition(service, organizer, "policy", IdentifierKind.TEXT)
    published = [bytes([i]) * 32 for i in range(3)]
    _add_pending(service, petition.id, published)
    assert service.publish("policy") is not None
    new = [bytes([0x80 + i]) * 32 for i in range(4)]
    # Nine rows, but four new entries: repeats within the batch and of the log.
    _add_pending(service, petition.id, new + new[:2] + published)
    with service.db.reading() as session:
        store = LogStore(session, petition.id)
        assert [store.pending_reaches(n) for n in (1, 4, 5, 9, 10)] == [
            True, True, False, False, False
        ]  # fmt: skip
        assert store.pending_count() == 4


@pytest.mark.postgres
def test_a_signature_committed_during_a_batch_is_never_lost(
    service: Service, organizer: OrganizerSecretKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL signers do not wait for the publisher: only rows it read are drained.

    Between two chunks a signer commits a new entry, one that sorts before every entry
    left to read (its range was passed) and one after; the first stays pending for the
    next batch, the second joins this one (it sorts after the last row read); neither
    is lost, and each batch still lies in order.
    """
    if service.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's publisher holds the only write lock: no signer commits meanwhile")
    monkeypatch.setattr(log_store, "READ_CHUNK", 4)
    petition = make_petition(service, organizer, "meanwhile", IdentifierKind.TEXT)
    _add_pending(service, petition.id, [bytes([0x40 + i]) * 32 for i in range(12)])
    early, late = bytes([0x01]) * 32, bytes([0xF0]) * 32
    original = LogStore.drain_chunk
    calls = []

    def drain_then_sign(store: LogStore, chunk: log_store.PendingChunk) -> None:
        original(store, chunk)
        calls.append(chunk)
        if len(calls) == 1:
            # Another connection, as another worker's signer would be.
            meanwhile = (service, petition.id, [early, late])
            thread = threading.Thread(target=_add_pending, args=meanwhile)
            thread.start()
            thread.join()

    monkeypatch.setattr(LogStore, "drain_chunk", drain_then_sign)
    first = service.publish("meanwhile")
    assert first is not None
    assert first.size == 13  # the twelve, and the late one
    monkeypatch.setattr(LogStore, "drain_chunk", original)
    service.publish("meanwhile")
    published = _published(service, "meanwhile")
    assert early in published
    assert late in published
    assert len(published) == 14
    assert published.index(early) == 13, "the early entry waited for the next batch"
    assert published[:13] == sorted(published[:13])


def test_a_failure_half_way_through_a_batch_leaves_the_log_and_the_batch_as_they_were(
    service: Service, organizer: OrganizerSecretKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every chunk is in the one transaction: a crash after some chunks rolls all back."""
    monkeypatch.setattr(log_store, "READ_CHUNK", 3)
    petition = make_petition(service, organizer, "crash", IdentifierKind.TEXT)
    keys = [bytes([i]) * 32 for i in range(1, 13)]
    _add_pending(service, petition.id, keys)
    original = LogStore.append
    calls = []

    def append_then_fail(store: LogStore, tree: CompactRange, entries: list[bytes]) -> None:
        calls.append(len(entries))
        if len(calls) == 3:
            raise RuntimeError("the process dies here")
        original(store, tree, entries)

    monkeypatch.setattr(LogStore, "append", append_then_fail)
    with pytest.raises(RuntimeError, match="dies"):
        service.publish("crash")
    assert service.checkpoint("crash").size == 0
    with service.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(LogLeafRow)) == 0
        assert session.scalar(select(func.count()).select_from(PendingSignatureRow)) == 12
    monkeypatch.setattr(LogStore, "append", original)
    assert service.publish("crash") is not None
    assert _published(service, "crash") == keys


def test_a_stored_log_that_no_longer_matches_its_checkpoint_is_not_extended(
    service: Service, organizer: OrganizerSecretKey
) -> None:
    petition = make_petition(service, organizer, "tampered", IdentifierKind.TEXT)
    _add_pending(service, petition.id, [bytes([i]) * 32 for i in range(1, 5)])
    assert service.publish("tampered") is not None
    with service.db.writing() as session:
        session.execute(
            update(LogNodeRow)
            .where(LogNodeRow.petition_id == petition.id, LogNodeRow.level == 2)
            .values(hash=bytes(32))
        )
    _add_pending(service, petition.id, [b"\xee" * 32])
    with pytest.raises(InconsistentLog, match="does not match its checkpoint of size 4"):
        service.publish("tampered")
    assert service.checkpoint("tampered").size == 4
