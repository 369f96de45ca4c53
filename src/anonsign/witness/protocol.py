"""The tlog-witness ``add-checkpoint`` request and answers (https://c2sp.org/tlog-witness).

A request body is an old-size line, up to 63 consistency proof lines, a blank line and
the signed checkpoint note::

    old <decimal size, "0" if none>\\n
    <base64 hash>\\n            (zero to 63 lines)
    \\n
    <checkpoint note, with its signature lines>

Answers: 200 with one cosignature line or more; 409 ``text/x.tlog.size`` with the size
the witness last cosigned (a wrong old size), or 409 alone (same size, another root); 422
(the proof does not verify); 403 (no trusted signature); 404 (an unknown origin); 400
(anything malformed, or an old size above the checkpoint's).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from anonsign.audit.merkle import HASH_SIZE
from anonsign.errors import AnonsignError

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "MalformedRequest",
    "format_add_checkpoint",
    "parse_add_checkpoint",
    "parse_size_answer",
]

#: The spec's limit on consistency proof lines.
MAX_PROOF_LINES = 63
#: The Content-Type of a 409 that says which size the witness holds.
SIZE_CONTENT_TYPE = "text/x.tlog.size"
#: A checkpoint with 100 signatures and a full proof stays far below this.
MAX_REQUEST_BYTES = 64 * 1024

_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


class MalformedRequest(AnonsignError):
    """This is not an add-checkpoint request (c2sp.org/tlog-witness)."""


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: str


def _hash(line: str) -> bytes | None:
    try:
        raw = binascii.a2b_base64(line.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    canonical = base64.b64encode(raw).decode("ascii") == line
    return raw if canonical and len(raw) == HASH_SIZE else None


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Split a request body; the note is returned unverified."""
    if len(body) > MAX_REQUEST_BYTES:
        raise MalformedRequest(f"The request is over {MAX_REQUEST_BYTES:,} bytes.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("The request is not UTF-8.") from None
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise MalformedRequest("The request has no blank line before the checkpoint.")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old ") or not _SIZE.fullmatch(first[4:]):
        raise MalformedRequest(
            "The request's first line must be 'old <size>', in decimal without leading zeros."
        )
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise MalformedRequest(f"The request has more than {MAX_PROOF_LINES} proof lines.")
    proof = []
    for number, line in enumerate(lines[1:], start=1):
        value = _hash(line)
        if value is None:
            raise MalformedRequest(f"Proof line {number} is not the base64 of a 32-byte hash.")
        proof.append(value)
    return AddCheckpoint(int(first[4:]), tuple(proof), note)


def format_add_checkpoint(old_size: int, proof: list[bytes], note: str) -> bytes:
    """The request body for ``note``, extending the witness's ``old_size`` by ``proof``."""
    if len(proof) > MAX_PROOF_LINES:
        raise ValueError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


def parse_size_answer(body: bytes) -> int | None:
    """The size in a 409 ``text/x.tlog.size`` answer, or None if it holds no size."""
    text = body.decode("ascii", errors="replace")
    if not text.endswith("\n") or not _SIZE.fullmatch(text[:-1]):
        return None
    return int(text[:-1])
