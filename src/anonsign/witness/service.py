"""A witness's answer to one add-checkpoint request, in the order c2sp.org/tlog-witness
gives its checks: syntax (400), a known origin (404), the log's signature (403), the old
size against the checkpoint's (400) and against the witness's record (409 with the size),
the same root for the same size (409), the consistency proof (422). Only then is the new
size recorded and the checkpoint cosigned, in the transaction that read the old one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from anonsign.audit.checkpoint import Checkpoint, CheckpointError
from anonsign.audit.merkle import empty_root, verify_consistency
from anonsign.crypto.cosign import WitnessSigner
from anonsign.crypto.notes import NoteError, NoteVerifier, parse_note
from anonsign.errors import MerkleError
from anonsign.witness.protocol import SIZE_CONTENT_TYPE, MalformedRequest, parse_add_checkpoint
from anonsign.witness.state import WitnessState

__all__ = ["Answer", "Witness"]

TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: str


def _text(status: int, message: str) -> Answer:
    return Answer(status, TEXT, message.rstrip("\n") + "\n")


class Witness:
    """The witness: its key, its state, and a clock for the cosignatures' timestamps."""

    def __init__(
        self,
        signer: WitnessSigner,
        state: WitnessState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.state = state
        self.clock = clock

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            request = parse_add_checkpoint(body)
            text = parse_note(request.note).text
            checkpoint = Checkpoint.parse(text)
        except (MalformedRequest, NoteError, CheckpointError) as exc:
            return _text(400, exc.message)
        with self.state.transaction() as tx:
            record = tx.log(checkpoint.origin)
            if record is None:
                return _text(404, f"This witness does not witness {checkpoint.origin!r}.")
            try:
                NoteVerifier.from_verifier_key(record.verifier_key).open(request.note)
            except NoteError:
                return _text(403, "The checkpoint carries no valid signature by the log's key.")
            if request.old_size > checkpoint.size:
                return _text(400, "The old size is larger than the checkpoint's size.")
            if request.old_size != record.size:
                return Answer(409, SIZE_CONTENT_TYPE, f"{record.size}\n")
            if request.old_size == checkpoint.size:
                expected = record.root if record.root is not None else empty_root()
                if checkpoint.root != expected:
                    tx.refuse(checkpoint.origin, "fork: another root for the same size", body)
                    return _text(409, f"This witness holds another root for size {record.size}.")
            elif record.size == 0:
                if request.proof:
                    return _text(400, "A consistency proof from size 0 is empty.")
            else:
                assert record.root is not None  # a size above 0 was recorded with its root
                try:
                    verify_consistency(
                        record.size, checkpoint.size, record.root, checkpoint.root, request.proof
                    )
                except MerkleError as exc:
                    tx.refuse(checkpoint.origin, f"inconsistent: {exc.message}", body)
                    return _text(
                        422,
                        f"The consistency proof from size {record.size} does not verify.",
                    )
            tx.advance(checkpoint.origin, checkpoint.size, checkpoint.root)
        return Answer(200, TEXT, self.signer.cosign(text, int(self.clock())))
