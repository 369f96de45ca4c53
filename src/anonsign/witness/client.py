"""The log's side of c2sp.org/tlog-witness: offer a checkpoint to each configured
witness and keep the cosignatures that verify.

The witnesses file (``ANONSIGN_WITNESSES_FILE``, default ``witnesses`` in the instance
folder) has one witness per line, ``<submission URL> <verifier key>`` (``#`` starts a
comment)::

    http://<56 letters>.onion  witness.example.org/w1+1c3e7b20+BJp...

Every request goes through ``ANONSIGN_WITNESS_TUNNEL`` (tor's ``HTTPTunnelPort``, an HTTP
CONNECT proxy) when it is set: the witnesses are the only hosts the service ever connects
to, and it reaches them over Tor like everyone else. A witness that cannot be reached or
refuses leaves the checkpoint without its cosignature; publication never waits for one.

The old size is the one the witness last cosigned: remembered per process, and learnt
from the witness's 409 answer (``text/x.tlog.size``) when it is unknown or stale, so a
checkpoint needs at most two requests per witness. A witness that holds a larger size
than the checkpoint offered has seen a later tree: the answer says so (a log that was
rolled back, or shown another tree), and nothing is retried.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from anonsign.audit.checkpoint import Checkpoint
from anonsign.crypto.cosign import CosignatureVerifier
from anonsign.crypto.notes import SIGNATURE_PREFIX, NoteError, parse_note
from anonsign.errors import AnonsignError
from anonsign.witness.protocol import (
    SIZE_CONTENT_TYPE,
    format_add_checkpoint,
    parse_size_answer,
)

__all__ = [
    "WitnessConfigError",
    "WitnessEndpoint",
    "WitnessOutcome",
    "load_witnesses",
    "offer_checkpoint",
]

#: Seconds for one request: an onion round trip can take several.
TIMEOUT_SECONDS = 60
#: A cosignature answer is a few lines; anything longer is not one.
MAX_ANSWER_BYTES = 16 * 1024


class WitnessConfigError(AnonsignError):
    """The witnesses file is not valid: one '<URL> <verifier key>' per line."""


@dataclass(frozen=True)
class WitnessEndpoint:
    verifier: CosignatureVerifier
    #: The submission prefix: requests go to ``<url>/add-checkpoint``.
    url: str

    @property
    def name(self) -> str:
        return self.verifier.name


@dataclass(frozen=True)
class WitnessOutcome:
    """What one witness answered for one checkpoint: its cosignature line, or why not."""

    witness: str
    key_id: bytes
    line: str | None
    problem: str | None = None


def load_witnesses(path: Path) -> list[WitnessEndpoint]:
    """The witnesses of ``path``; none if the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise WitnessConfigError(f"Cannot read the witnesses file {path}: {exc}.") from None
    witnesses: list[WitnessEndpoint] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{path}, line {number}"
        if len(parts) != 2:
            raise WitnessConfigError(f"{where}: expected '<submission URL> <verifier key>'.")
        url, key = parts
        address = urllib.parse.urlsplit(url)
        if address.scheme not in ("http", "https") or not address.hostname:
            raise WitnessConfigError(f"{where}: {url!r} is not an http(s) address.")
        try:
            verifier = CosignatureVerifier.from_verifier_key(key)
        except NoteError as exc:
            raise WitnessConfigError(f"{where}: {exc.message}") from None
        if any(w.verifier.key_id == verifier.key_id for w in witnesses):
            raise WitnessConfigError(f"{where}: the witness {verifier.name} is listed twice.")
        witnesses.append(WitnessEndpoint(verifier, url.rstrip("/")))
    return witnesses


def _post(url: str, body: bytes, tunnel: tuple[str, int] | None) -> tuple[int, str, bytes]:
    address = urllib.parse.urlsplit(url)
    host = address.hostname or ""
    port = address.port or (443 if address.scheme == "https" else 80)
    kind = http.client.HTTPSConnection if address.scheme == "https" else http.client.HTTPConnection
    if tunnel is None:
        conn = kind(host, port, timeout=TIMEOUT_SECONDS)
    else:
        conn = kind(tunnel[0], tunnel[1], timeout=TIMEOUT_SECONDS)
        conn.set_tunnel(host, port)
    try:
        conn.request(
            "POST",
            (address.path or "") + "/add-checkpoint",
            body=body,
            headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "anonsign"},
        )
        answer = conn.getresponse()
        data = answer.read(MAX_ANSWER_BYTES + 1)
        return answer.status, answer.getheader("Content-Type") or "", data
    finally:
        conn.close()


#: The old size each witness last cosigned, per (witness key ID, origin), in this process.
_known_sizes: dict[tuple[bytes, str], int] = {}
_known_lock = threading.Lock()


def offer_checkpoint(
    witness: WitnessEndpoint,
    note: str,
    proof_from: Callable[[int], list[bytes]],
    tunnel: tuple[str, int] | None,
) -> WitnessOutcome:
    """Offer ``note`` (the log-signed checkpoint) to ``witness``; ``proof_from(old)`` is
    the consistency proof from the witness's old size to the checkpoint's."""
    checkpoint = Checkpoint.parse(parse_note(note).text)
    key = (witness.verifier.key_id, checkpoint.origin)
    with _known_lock:
        old = _known_sizes.get(key, 0)

    def outcome(line: str | None, problem: str | None = None) -> WitnessOutcome:
        return WitnessOutcome(witness.name, witness.verifier.key_id, line, problem)

    for _attempt in range(2):
        if old > checkpoint.size:
            return outcome(
                None,
                f"{witness.name} has cosigned a larger tree ({old:,} entries) than this "
                f"checkpoint ({checkpoint.size:,}): it has seen another view of this log.",
            )
        proof = proof_from(old) if 0 < old < checkpoint.size else []
        try:
            status, kind, body = _post(witness.url, format_add_checkpoint(old, proof, note), tunnel)
        except (OSError, http.client.HTTPException) as exc:
            return outcome(None, f"cannot reach {witness.name}: {exc or type(exc).__name__}")
        if status == 409 and kind.split(";")[0].strip() == SIZE_CONTENT_TYPE:
            size = parse_size_answer(body)
            if size is None or size == old:
                return outcome(None, f"{witness.name} answered 409 without a usable size")
            old = size
            with _known_lock:
                _known_sizes[key] = size
            continue
        if status != 200:
            first = body.decode("utf-8", errors="replace").strip().splitlines()[:1]
            return outcome(None, f"{witness.name} refused with HTTP {status}: {''.join(first)}")
        line = _own_line(witness, note, body)
        if line is None:
            return outcome(None, f"{witness.name} answered no valid cosignature by its key")
        with _known_lock:
            _known_sizes[key] = checkpoint.size
        return outcome(line)
    return outcome(None, f"{witness.name} kept changing its size")


def _own_line(witness: WitnessEndpoint, note: str, body: bytes) -> str | None:
    """This witness's verifying cosignature line in an answer (other keys ignored)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = [f"{line}\n" for line in text.split("\n") if line.startswith(SIGNATURE_PREFIX)]
    for line in lines:
        try:
            witness.verifier.timestamp_in(note + line)
        except NoteError:
            continue
        return line
    return None
