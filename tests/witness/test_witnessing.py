"""Witnesses against a real log: an honest log gathers cosignatures; a fork and a rollback
are refused by the witness and caught by `audit verify`; quorums fail and pass; the log
publishes (visibly without cosignatures) while its witnesses are down.

Each witness is a real HTTP server (tests/witness/conftest.py) with its own key and state
file; the log is a real instance (SQLite, and PostgreSQL when configured) whose service
offers each checkpoint over HTTP as in production.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask.testing import FlaskClient

from anonsign import service as service_module
from anonsign.audit.bundle import Bundle, read_bundle, write_bundle
from anonsign.audit.checkpoint import Checkpoint
from anonsign.audit.merkle import consistency_proof
from anonsign.audit.verify import verify_bundle
from anonsign.crypto.cosign import CosignatureVerifier
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.notes import parse_note
from anonsign.domain.identifiers import IdentifierKind
from anonsign.instance import load_log_signer
from anonsign.service import Service
from anonsign.storage.log_store import LogStore
from anonsign.storage.repository import Repository
from anonsign.witness.protocol import SIZE_CONTENT_TYPE, format_add_checkpoint
from tests.conftest import add_pending, make_petition
from tests.witnesses import MakeWitness, RunningWitness, witnessed_by

SLUG = "witnessed"


@pytest.fixture
def log(service: Service, organizer: OrganizerSecretKey) -> str:
    """A new petition (its log empty): its origin."""
    petition = make_petition(service, organizer, SLUG, IdentifierKind.TEXT)
    return petition.log_origin


def grow(service: Service, count: int) -> None:
    add_pending(service, service.petition(SLUG).id, [os.urandom(32) for _ in range(count)])
    assert service.publish(SLUG) is not None


def bundle_of(service: Service, tmp_path: Path, note: str, name: str = "bundle") -> Bundle:
    size = Checkpoint.parse(parse_note(note).text).size
    return write_bundle(
        tmp_path / name,
        origin=service.petition(SLUG).log_origin,
        source=None,
        key_text=service.verifier_key() + "\n",
        checkpoint_note=note,
        entries=service.leaves(SLUG, 0, size) if size <= 1000 else [],
    )


def test_an_honest_log_gathers_cosignatures_from_two_witnesses(
    service: Service, log: str, make_witness: MakeWitness, client: FlaskClient, tmp_path: Path
) -> None:
    w1, w2 = make_witness("witness.example.org/w1"), make_witness("journalists.example/w")
    witnessed_by(service, w1, w2, origins=[log])
    for batch in (300, 40):
        grow(service, batch)
        outcomes = service.witness(SLUG)
        assert [(o.witness, o.problem) for o in outcomes] == [
            ("witness.example.org/w1", None),
            ("journalists.example/w", None),
        ]
    # Each witness now holds the log's size; the second batch came with a proof from 300.
    assert [w.witness.state.logs()[0].size for w in (w1, w2)] == [340, 340]

    served = client.get(f"/p/{SLUG}/checkpoint").get_data(as_text=True)
    lines = served.splitlines()
    assert lines[4].startswith("— anonsign ")  # the log's own signature first
    assert [line.split()[1] for line in lines[5:]] == [
        "journalists.example/w",
        "witness.example.org/w1",
    ]
    for witness in (w1, w2):
        CosignatureVerifier.from_verifier_key(witness.key).timestamp_in(served)
    # The auditors' page says who cosigned, and shows the note as served.
    page = client.get(f"/p/{SLUG}/audit").get_data(as_text=True)
    assert "Cosigned by these witnesses" in page
    assert "journalists.example/w\nwitness.example.org/w1" in page
    assert lines[5] in page

    bundle = bundle_of(service, tmp_path, served)
    report = verify_bundle(bundle, service.verifier_key(), witnesses=[w1.key, w2.key], quorum=2)
    assert report.ok, report.findings
    assert sorted(report.cosigned_by) == ["journalists.example/w", "witness.example.org/w1"]


def test_quorum_checks_fail_and_pass(
    service: Service, log: str, make_witness: MakeWitness, client: FlaskClient, tmp_path: Path
) -> None:
    w1, w2 = make_witness("w1.example"), make_witness("w2.example")
    absent = make_witness("w3.example")  # runs, but is not among the log's witnesses
    witnessed_by(service, w1, w2, origins=[log])
    grow(service, 5)
    service.witness(SLUG)
    bundle = bundle_of(service, tmp_path, client.get(f"/p/{SLUG}/checkpoint").get_data(True))
    key = service.verifier_key()

    assert verify_bundle(bundle, key, witnesses=[w1.key, w2.key, absent.key], quorum=2).ok
    short = verify_bundle(bundle, key, witnesses=[w1.key, absent.key], quorum=2)
    assert [f.kind for f in short.findings] == ["quorum"]
    assert "1 of the 2 given witnesses cosigned" in short.findings[0].message
    assert "not cosigned by w3.example" in short.findings[0].message
    assert verify_bundle(bundle, key, witnesses=[w1.key, absent.key], quorum=1).ok
    assert verify_bundle(bundle, key, witnesses=[absent.key], quorum=0).ok

    # A cosignature altered in transit: the witness's line is there but does not verify.
    note = bundle.checkpoint_note
    line = next(x for x in note.splitlines() if x.startswith("— w1.example "))
    forged = line[:-6] + ("AAAA==" if not line.endswith("AAAA==") else "BBBB==")
    (bundle.path / "checkpoint").write_text(note.replace(line, forged))
    altered = verify_bundle(read_bundle(bundle.path), key, witnesses=[w1.key, w2.key], quorum=2)
    assert sorted(f.kind for f in altered.findings) == ["bad-cosignature", "quorum"]


def _signed(service: Service, size: int, root: bytes) -> str:
    signer = load_log_signer(service.settings)
    return signer.sign(Checkpoint(service.petition(SLUG).log_origin, size, root).to_text())


def test_a_fork_is_refused_by_the_witness_and_caught_by_audit_verify(
    service: Service, log: str, make_witness: MakeWitness, tmp_path: Path
) -> None:
    w1 = make_witness("w1.example")
    witnessed_by(service, w1, origins=[log])
    grow(service, 20)
    assert service.witness(SLUG)[0].line is not None
    honest = service.checkpoint(SLUG).note
    # The log's key signs a second checkpoint of the same size with another root (what a
    # server showing the addressee a different list would need).
    forked = _signed(service, 20, os.urandom(32))
    answer = w1.witness.add_checkpoint(format_add_checkpoint(20, [], forked))
    assert answer.status == 409
    assert "another root for size 20" in answer.body
    assert w1.witness.state.logs()[0].size == 20  # nothing moved
    evidence = w1.witness.state.refused(log)
    assert [reason for reason, _ in evidence] == ["fork: another root for the same size"]
    assert forked.encode() in evidence[0][1]  # the signed fork, kept as proof

    bundle = bundle_of(service, tmp_path, forked)
    report = verify_bundle(bundle, service.verifier_key(), honest)
    assert "fork" in [f.kind for f in report.findings]


def test_a_rollback_is_refused_by_the_witness_and_caught_by_audit_verify(
    service: Service, log: str, make_witness: MakeWitness, tmp_path: Path
) -> None:
    w1 = make_witness("w1.example")
    witnessed_by(service, w1, origins=[log])
    grow(service, 10)
    service.witness(SLUG)
    small = service.checkpoint(SLUG).note
    grow(service, 10)
    service.witness(SLUG)
    honest = service.checkpoint(SLUG).note
    # The log offers its older, smaller checkpoint again, with either old size.
    refused_small = w1.witness.add_checkpoint(format_add_checkpoint(10, [], small))
    assert (refused_small.status, refused_small.content_type, refused_small.body) == (
        409,
        SIZE_CONTENT_TYPE,
        "20\n",
    )
    refused_big = w1.witness.add_checkpoint(format_add_checkpoint(20, [], small))
    assert refused_big.status == 400
    assert w1.witness.state.logs()[0].size == 20

    report = verify_bundle(bundle_of(service, tmp_path, small), service.verifier_key(), honest)
    assert "shrink" in [f.kind for f in report.findings]


def test_an_inconsistent_checkpoint_is_422_and_kept_as_evidence(
    service: Service, log: str, make_witness: MakeWitness
) -> None:
    w1 = make_witness("w1.example")
    witnessed_by(service, w1, origins=[log])
    grow(service, 10)
    service.witness(SLUG)
    with service.db.reading() as session:
        store = LogStore(session, Repository(session).petition(SLUG).id)
        proof = consistency_proof(5, 10, store.nodes)
    rewritten = _signed(service, 30, os.urandom(32))
    answer = w1.witness.add_checkpoint(format_add_checkpoint(10, proof, rewritten))
    assert answer.status == 422
    assert w1.witness.state.logs()[0].size == 10
    assert w1.witness.state.refused(log)[0][0].startswith("inconsistent: ")


def test_the_log_publishes_without_cosignatures_while_its_witnesses_are_down(
    service: Service,
    log: str,
    make_witness: MakeWitness,
    client: FlaskClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w1 = make_witness("w1.example")
    down = RunningWitness(w1.witness, "http://127.0.0.1:1")  # nothing listens on port 1
    witnessed_by(service, down, origins=[log])
    grow(service, 7)
    outcomes = service.witness(SLUG)
    assert outcomes[0].line is None
    assert outcomes[0].problem is not None
    assert outcomes[0].problem.startswith("cannot reach w1.example")
    served = client.get(f"/p/{SLUG}/checkpoint").get_data(as_text=True)
    assert served == service.checkpoint(SLUG).note  # the log's signature alone
    page = client.get(f"/p/{SLUG}/audit").get_data(as_text=True)
    assert "No witness has cosigned this checkpoint yet." in page  # visibly unwitnessed
    assert Checkpoint.parse(parse_note(served).text).size == 7
    report = verify_bundle(
        bundle_of(service, tmp_path, served), service.verifier_key(), witnesses=[w1.key], quorum=1
    )
    assert [f.kind for f in report.findings] == ["quorum"]

    # The witness is back. The background publisher's next round (an hour after the
    # batch) does not ask it again at once; once WITNESS_RETRY_SECONDS have passed, it
    # does and gathers its cosignature.
    witnessed_by(service, w1, origins=[log])
    _an_hour_later(monkeypatch)
    service.witness_due()
    assert len(client.get(f"/p/{SLUG}/checkpoint").get_data(as_text=True).splitlines()) == 5
    monkeypatch.setattr(service_module, "WITNESS_RETRY_SECONDS", 0.0)
    service.witness_due()
    assert len(client.get(f"/p/{SLUG}/checkpoint").get_data(as_text=True).splitlines()) == 6


def _an_hour_later(monkeypatch: pytest.MonkeyPatch) -> float:
    """The service's clock, an hour ahead (its monotonic clock as it is)."""
    later = time.time() + 3600
    monkeypatch.setattr(
        service_module, "time", SimpleNamespace(time=lambda: later, monotonic=time.monotonic)
    )
    return later


def test_witnesses_are_asked_only_after_the_batch_s_hour(
    service: Service, log: str, make_witness: MakeWitness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A witness stamps its cosignature to the second; the background publisher offers a
    batch only from the hour after it, so the stamp says no more than the published hour
    (SECURITY.md, "What is stored")."""
    w1 = make_witness("w1.example")
    witnessed_by(service, w1, origins=[log])
    grow(service, 3)
    service.witness_due()
    assert w1.witness.state.logs()[0].size == 0  # not asked within the batch's hour
    later = _an_hour_later(monkeypatch)
    w1.witness.clock = lambda: later
    service.witness_due()
    assert w1.witness.state.logs()[0].size == 3
    stored = service.served_checkpoint(SLUG)
    stamp = CosignatureVerifier.from_verifier_key(w1.key).timestamp_in(stored.note)
    assert stamp >= (stored.published_hour + 1) * 3600
    # An organizer's own `log publish` (service.witness) asks at once.
    grow(service, 2)
    assert service.witness(SLUG)[0].line is not None


def test_a_witness_that_saw_another_tree_is_told_apart(
    service: Service, log: str, make_witness: MakeWitness
) -> None:
    """The witness holds a larger size than the log's checkpoint (the log was shown to
    it with more entries): the log reports that, it does not retry or overwrite."""
    w1 = make_witness("w1.example")
    witnessed_by(service, w1, origins=[log])
    grow(service, 4)
    ahead = _signed(service, 9, os.urandom(32))
    assert w1.witness.add_checkpoint(format_add_checkpoint(0, [], ahead)).status == 200
    outcome = service.witness(SLUG)[0]
    assert outcome.line is None
    assert outcome.problem is not None
    assert "has cosigned a larger tree (9 entries) than this checkpoint (4)" in outcome.problem
