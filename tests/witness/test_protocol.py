"""The add-checkpoint request and the witness's answers, per c2sp.org/tlog-witness."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from anonsign.audit.checkpoint import Checkpoint
from anonsign.audit.merkle import MemoryNodeStore, consistency_proof, empty_root, leaf_hash
from anonsign.crypto.cosign import WitnessSigner
from anonsign.crypto.notes import LogSigner
from anonsign.witness.protocol import (
    SIZE_CONTENT_TYPE,
    MalformedRequest,
    format_add_checkpoint,
    parse_add_checkpoint,
    parse_size_answer,
)
from anonsign.witness.service import Witness
from anonsign.witness.state import WitnessState

#: The spec's example request body, byte for byte.
SPEC_REQUEST = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49"
    "/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
).encode()


def test_the_spec_example_request_parses_and_formats_back_byte_for_byte() -> None:
    request = parse_add_checkpoint(SPEC_REQUEST)
    assert request.old_size == 20852014
    assert len(request.proof) == 4
    assert request.proof[0] == base64.b64decode("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=")
    assert request.note.startswith("example.com/behind-the-sofa\n20852163\n")
    assert format_add_checkpoint(request.old_size, list(request.proof), request.note) == (
        SPEC_REQUEST
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"old 1\n", "no blank line"),
        (b"old 01\n\nx", "'old <size>'"),
        (b"old -1\n\nx", "'old <size>'"),
        (b"new 1\n\nx", "'old <size>'"),
        (b"old 1\nnot-base64\n\nx", "Proof line 1"),
        (b"old 1\n" + base64.b64encode(bytes(31)) + b"\n\nx", "Proof line 1"),
        (b"old 1\n" + b"".join([base64.b64encode(bytes(32)) + b"\n"] * 64) + b"\nx", "63"),
        (b"old 1\n\n\xff", "not UTF-8"),
        (b"x" * 70_000, "over"),
    ],
)
def test_malformed_requests_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(MalformedRequest, match=message):
        parse_add_checkpoint(body)


def test_size_answers() -> None:
    assert parse_size_answer(b"20\n") == 20
    assert parse_size_answer(b"0\n") == 0
    assert parse_size_answer(b"20") is None
    assert parse_size_answer(b"020\n") is None


# --- the witness's answers, in the spec's order ------------------------------------------

ORIGIN = "petitions.example.org/free-press"


@pytest.fixture
def log_key() -> LogSigner:
    return LogSigner.generate("petitions.example.org")


@pytest.fixture
def witness(tmp_path: Path, log_key: LogSigner) -> Witness:
    state = WitnessState(tmp_path / "witness.db")
    state.add_log(ORIGIN, log_key.verifier_key())
    return Witness(WitnessSigner.generate("w.example"), state, clock=lambda: 1700000000.5)


def _tree(size: int) -> MemoryNodeStore:
    store = MemoryNodeStore()
    for n in range(size):
        store.append(leaf_hash(n.to_bytes(32, "big")))
    return store


def _note(key: LogSigner, size: int, origin: str = ORIGIN) -> str:
    return key.sign(Checkpoint(origin, size, _tree(size).root()).to_text())


def test_a_first_checkpoint_is_cosigned_with_the_clock_s_second(
    witness: Witness, log_key: LogSigner
) -> None:
    note = _note(log_key, 5)
    answer = witness.add_checkpoint(format_add_checkpoint(0, [], note))
    assert (answer.status, answer.content_type) == (200, "text/plain; charset=utf-8")
    assert witness.signer.verifier().timestamp_in(note + answer.body) == 1700000000
    assert answer.body.count("\n") == 1


def test_an_extension_with_its_proof_is_cosigned_and_recorded(
    witness: Witness, log_key: LogSigner
) -> None:
    witness.add_checkpoint(format_add_checkpoint(0, [], _note(log_key, 5)))
    proof = consistency_proof(5, 12, _tree(12))
    answer = witness.add_checkpoint(format_add_checkpoint(5, proof, _note(log_key, 12)))
    assert answer.status == 200
    assert witness.state.logs()[0].size == 12
    # The same checkpoint again (another host of the log): cosigned again.
    again = witness.add_checkpoint(format_add_checkpoint(12, [], _note(log_key, 12)))
    assert again.status == 200


@pytest.mark.parametrize(
    ("make_body", "status", "content_type", "body"),
    [
        (lambda k: format_add_checkpoint(0, [], _note(k, 3, "other.example/x")), 404, None, None),
        (
            lambda k: format_add_checkpoint(0, [], _note(LogSigner.generate(k.name), 3)),
            403,
            None,
            None,
        ),
        (lambda k: format_add_checkpoint(4, [], _note(k, 3)), 400, None, None),
        (lambda k: format_add_checkpoint(2, [], _note(k, 3)), 409, SIZE_CONTENT_TYPE, "0\n"),
        (lambda k: format_add_checkpoint(0, [bytes(32)], _note(k, 3)), 400, None, None),
        (lambda k: b"old 0\n\nnot a note\n", 400, None, None),
    ],
    ids=[
        "unknown-origin",
        "unknown-key",
        "old-above-size",
        "wrong-old-size",
        "proof-from-0",
        "no-note",
    ],
)
def test_refusals_answer_the_spec_s_status(
    witness: Witness,
    log_key: LogSigner,
    make_body: object,
    status: int,
    content_type: str | None,
    body: str | None,
) -> None:
    answer = witness.add_checkpoint(make_body(log_key))  # type: ignore[operator]
    assert answer.status == status, answer.body
    if content_type is not None:
        assert answer.content_type == content_type
    if body is not None:
        assert answer.body == body
    assert witness.state.logs()[0].size == 0


def test_an_empty_log_is_cosigned_only_with_the_empty_root(
    witness: Witness, log_key: LogSigner
) -> None:
    empty = log_key.sign(Checkpoint(ORIGIN, 0, empty_root()).to_text())
    assert witness.add_checkpoint(format_add_checkpoint(0, [], empty)).status == 200
    wrong = log_key.sign(Checkpoint(ORIGIN, 0, bytes(32)).to_text())
    assert witness.add_checkpoint(format_add_checkpoint(0, [], wrong)).status == 409
