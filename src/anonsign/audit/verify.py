"""The auditor's verdict on a log bundle: is the signed count the log's true content?

:func:`verify_bundle` checks, with a verifier key the auditor obtained on their own
(never the one inside the bundle, which it only compares):

* the checkpoint note is signed by that key (c2sp.org/signed-note) and its body parses
  (c2sp.org/tlog-checkpoint); its origin is the bundle's and is ``<key name>/<petition>``;
* every entry is 32 bytes, and no entry appears twice (one signature, one entry);
* the number of entries equals the checkpoint's size;
* the RFC 9162 root recomputed from the entries equals the signed root, so no entry was
  replaced, removed, inserted or reordered after signing;
* against a previous checkpoint by the same key for the same log: the size did not
  shrink, the same size has the same root, and the previous root is the root of the
  first entries of this log (recomputed locally; optionally also the server's
  consistency proof), so the log only grew by appending.

Each failed check is a :class:`Finding` of one of these kinds: ``wrong-key``,
``bad-signature``, ``malformed``, ``origin-mismatch``, ``duplicate-entry``,
``missing-entries``, ``extra-entries``, ``root-mismatch``, ``shrink``, ``fork``,
``not-extension``, ``bad-proof``, and with witnesses ``bad-cosignature`` (a given
witness's line does not verify) and ``quorum`` (fewer of the given witnesses cosigned
than asked). The entries stream past once (a set of them for
uniqueness found by sorting runs of them, a compact range for the roots), so memory
stays bounded whatever the log's size (bench/README.md, "audit_verify.py").

This module judges; it must not fetch anything itself (a caller passes the consistency
proof source), print anything, or import a web framework or a database layer. A text
that fails its signature check is never read further, as the signed-note spec requires.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

from anonsign.audit.bundle import Bundle, BundleError, FetchError, parse_petition_url
from anonsign.audit.checkpoint import Checkpoint, CheckpointError, petition_of
from anonsign.audit.merkle import CompactRange, empty_root, leaf_hash, verify_consistency
from anonsign.audit.repeats import RepeatFinder
from anonsign.crypto.cosign import CosignatureVerifier, NotCosigned
from anonsign.crypto.notes import MalformedNote, NoteError, NoteVerifier
from anonsign.errors import MerkleError

__all__ = [
    "FINDING_KINDS",
    "REPORT_FORMAT",
    "ConsistencySource",
    "Finding",
    "Report",
    "verify_bundle",
]

REPORT_FORMAT = "anonsign-audit-report-v1"

FINDING_KINDS = frozenset(
    {
        "wrong-key",
        "bad-signature",
        "malformed",
        "origin-mismatch",
        "duplicate-entry",
        "missing-entries",
        "extra-entries",
        "root-mismatch",
        "shrink",
        "fork",
        "not-extension",
        "bad-proof",
        "bad-cosignature",
        "quorum",
    }
)

#: ``source(old_size, new_size)`` returns the server's consistency proof between them.
ConsistencySource = Callable[[int, int], Sequence[bytes]]


@dataclass(frozen=True)
class Finding:
    """One failed check: a kind from :data:`FINDING_KINDS` and a one-sentence message."""

    kind: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")


@dataclass(frozen=True)
class Report:
    """What :func:`verify_bundle` found. ``ok`` only when there is no finding at all."""

    #: The verified checkpoint's origin, size and root (None if it did not verify).
    origin: str | None
    size: int | None
    root: bytes | None
    #: The key the checkpoint was checked against: its name and verifier key text.
    signed_by: str
    key: str
    #: Entries read from the bundle and how many were distinct (None if not read).
    entries: int | None
    distinct: int | None
    #: The size of the previous checkpoint compared against, if one was given and verified.
    previous_size: int | None
    findings: tuple[Finding, ...] = field(default=())
    #: The given witnesses whose cosignature on the checkpoint verified, and the quorum.
    cosigned_by: tuple[str, ...] = field(default=())
    quorum: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, object]:
        return {
            "format": REPORT_FORMAT,
            "ok": self.ok,
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode("ascii") if self.root else None,
            "signed_by": self.signed_by,
            "key": self.key,
            "entries": self.entries,
            "distinct": self.distinct,
            "previous_size": self.previous_size,
            "cosigned_by": list(self.cosigned_by),
            "quorum": self.quorum,
            "findings": [{"kind": f.kind, "message": f.message} for f in self.findings],
        }

    def to_json(self) -> str:
        """The report as one JSON object (keys as in :meth:`to_dict`), indented."""
        return json.dumps(self.to_dict(), indent=2)


def _check_cosignatures(
    cosigners: Sequence[CosignatureVerifier],
    quorum: int,
    note: str,
    findings: list[Finding],
) -> list[str]:
    """The given witnesses that cosigned ``note`` (already known to verify by the log's
    key); a line under a given witness's name and key ID that fails is a finding."""
    cosigned = []
    for cosigner in cosigners:
        try:
            cosigner.timestamp_in(note)
        except NotCosigned:
            continue
        except NoteError as exc:
            findings.append(Finding("bad-cosignature", exc.message))
            continue
        cosigned.append(cosigner.name)
    if len(cosigned) < quorum:
        missing = [c.name for c in cosigners if c.name not in cosigned]
        findings.append(
            Finding(
                "quorum",
                f"{len(cosigned)} of the {len(cosigners)} given witnesses cosigned this "
                f"checkpoint, expected at least {quorum}; not cosigned by "
                f"{', '.join(missing)}.",
            )
        )
    return cosigned


# --- the one pass over the entries --------------------------------------------------------


@dataclass
class _Scan:
    count: int = 0
    distinct: int = 0
    duplicates: int = 0
    #: (earlier index, later index, value) of the lowest-placed entry seen before it.
    first_duplicate: tuple[int, int, bytes] | None = None
    #: Root of the first n entries, for each n asked for that the log reaches.
    roots: dict[int, bytes] = field(default_factory=dict)


def _scan(entries: Iterable[bytes], sizes: Iterable[int]) -> _Scan:
    """Count, find repeats and compute prefix roots in one streaming pass.

    Repeats are found by sorting (anonsign.audit.repeats), not with a set of every entry,
    so memory stays bounded whatever the log's size.
    """
    scan = _Scan()
    with RepeatFinder() as repeats:

        def leaf_hashes() -> Iterator[bytes]:
            add = repeats.add
            hash_leaf = leaf_hash
            for entry in entries:
                add(entry)
                yield hash_leaf(entry)

        hashes = leaf_hashes()
        tree = CompactRange()
        for n in sorted(set(sizes)):
            tree.extend(islice(hashes, n - tree.size))
            if tree.size < n:
                break
            scan.roots[n] = tree.root()
        tree.extend(hashes)
        found = repeats.result()
    scan.count = tree.size
    scan.roots[tree.size] = tree.root()
    scan.distinct = found.distinct
    scan.duplicates = found.repeated
    scan.first_duplicate = found.first
    return scan


# --- messages -----------------------------------------------------------------------------


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _short(root: bytes) -> str:
    """A root as the checkpoint writes it (base64), cut short: what an auditor compares."""
    return f"{base64.b64encode(root).decode('ascii')[:16]}\u2026"


def _about(what: str, error: NoteError | CheckpointError) -> str:
    """Reword a note or checkpoint error about ``what`` ("The checkpoint", ...)."""
    message = error.message
    for prefix in ("The note", "This checkpoint", "This is not"):
        if message.startswith(prefix):
            rest = message[len(prefix) :]
            return f"{what} is not{rest}" if prefix == "This is not" else f"{what}{rest}"
    return f"{what}: {message}"


def _open_checkpoint(
    verifier: NoteVerifier, note: str, what: str, findings: list[Finding]
) -> Checkpoint | None:
    """The checkpoint in ``note`` if ``verifier`` signed it and it parses; else a finding."""
    try:
        text = verifier.open(note)
    except MalformedNote as exc:
        findings.append(Finding("malformed", _about(what, exc)))
        return None
    except NoteError as exc:
        findings.append(Finding("bad-signature", _about(what, exc)))
        return None
    try:
        return Checkpoint.parse(text)
    except CheckpointError as exc:
        findings.append(Finding("malformed", _about(what, exc)))
        return None


# --- the verdict --------------------------------------------------------------------------


def verify_bundle(
    bundle: Bundle,
    verifier_key_text: str,
    previous_checkpoint_note: str | None = None,
    *,
    consistency: ConsistencySource | None = None,
    witnesses: Sequence[str] = (),
    quorum: int = 0,
) -> Report:
    """Check a bundle against the auditor's verifier key and, optionally, an older checkpoint.

    ``verifier_key_text`` is the key the auditor trusts (``<name>+<id>+<key>``); an invalid
    one raises :class:`~anonsign.crypto.notes.InvalidVerifierKey`. ``consistency``, if
    given, fetches the server's consistency proof from the previous size to this one,
    which must verify too (it must raise an AnonsignError if it cannot). A
    :class:`BundleError` from the bundle's entries becomes a ``malformed`` finding.
    """
    verifier = NoteVerifier.from_verifier_key(verifier_key_text)
    cosigners = [CosignatureVerifier.from_verifier_key(w) for w in witnesses]
    if not 0 <= quorum <= len(cosigners):
        raise ValueError(f"a quorum of {quorum} among {len(cosigners)} witnesses")
    findings: list[Finding] = []
    cosigned: list[str] = []

    def report(
        checkpoint: Checkpoint | None = None,
        scan: _Scan | None = None,
        previous: Checkpoint | None = None,
    ) -> Report:
        return Report(
            origin=checkpoint.origin if checkpoint else None,
            size=checkpoint.size if checkpoint else None,
            root=checkpoint.root if checkpoint else None,
            signed_by=verifier.name,
            key=verifier.verifier_key(),
            entries=scan.count if scan else None,
            distinct=scan.distinct if scan else None,
            previous_size=previous.size if previous else None,
            findings=tuple(findings),
            cosigned_by=tuple(cosigned),
            quorum=quorum,
        )

    # The key the server handed out with the bundle must be the one the auditor trusts:
    # a server showing different keys to different people is splitting its view.
    try:
        served = NoteVerifier.from_verifier_key(bundle.key_text)
    except NoteError as exc:
        findings.append(
            Finding(
                "wrong-key",
                f"The bundle's key file is not a verifier key, expected your key "
                f"{verifier.verifier_key()}: {exc.message}",
            )
        )
    else:
        if served != verifier:
            findings.append(
                Finding(
                    "wrong-key",
                    f"The bundle's key {served.verifier_key()} is not the key you gave, "
                    f"{verifier.verifier_key()}: the server may show different keys to "
                    "different people.",
                )
            )

    checkpoint = _open_checkpoint(verifier, bundle.checkpoint_note, "The checkpoint", findings)
    if checkpoint is None:
        return report()
    _check_origin(checkpoint, bundle, verifier, findings)
    cosigned += _check_cosignatures(cosigners, quorum, bundle.checkpoint_note, findings)

    previous: Checkpoint | None = None
    if previous_checkpoint_note is not None:
        previous = _open_checkpoint(
            verifier, previous_checkpoint_note, "The previous checkpoint", findings
        )
        if previous is not None and previous.origin != checkpoint.origin:
            findings.append(
                Finding(
                    "origin-mismatch",
                    f"The previous checkpoint is for the log {previous.origin!r}, expected "
                    f"the same log as this one, {checkpoint.origin!r}.",
                )
            )
            previous = None
    if previous is not None:
        if previous.size > checkpoint.size:
            findings.append(
                Finding(
                    "shrink",
                    f"The log shrank from {previous.size:,} to {checkpoint.size:,} entries: "
                    "a checkpoint may only grow, so entries were removed.",
                )
            )
        elif previous.size == checkpoint.size and previous.root != checkpoint.root:
            findings.append(
                Finding(
                    "fork",
                    f"Fork: two checkpoints of size {checkpoint.size:,} with different roots, "
                    f"{_short(previous.root)} (previous) and {_short(checkpoint.root)} (this "
                    "one): the log signed two different histories.",
                )
            )

    sizes = [checkpoint.size]
    if previous is not None and previous.size < checkpoint.size:
        sizes.append(previous.size)
    try:
        scan = _scan(bundle.entries(), sizes)
    except BundleError as exc:
        findings.append(Finding("malformed", exc.message))
        return report(checkpoint, None, previous)

    entries_match = _check_entries(bundle, checkpoint, scan, findings)
    if previous is not None and previous.size < checkpoint.size:
        _check_extension(previous, checkpoint, scan, entries_match, consistency, findings)
    return report(checkpoint, scan, previous)


def _check_origin(
    checkpoint: Checkpoint, bundle: Bundle, verifier: NoteVerifier, findings: list[Finding]
) -> None:
    if checkpoint.origin != bundle.origin:
        findings.append(
            Finding(
                "origin-mismatch",
                f"The checkpoint is for the log {checkpoint.origin!r}, but the bundle says "
                f"it holds {bundle.origin!r}.",
            )
        )
    slug = petition_of(checkpoint.origin, verifier.name)
    if slug is None:
        findings.append(
            Finding(
                "origin-mismatch",
                f"The checkpoint's origin {checkpoint.origin!r} is not a petition log of "
                f"{verifier.name!r}, expected '{verifier.name}/<petition>'.",
            )
        )
    elif bundle.source is not None:
        try:
            source_slug: str | None = parse_petition_url(bundle.source).slug
        except FetchError:
            source_slug = None
        if source_slug != slug:
            findings.append(
                Finding(
                    "origin-mismatch",
                    f"The checkpoint is for petition {slug!r}, but the bundle was fetched "
                    f"from {bundle.source!r}, expected the address of that petition.",
                )
            )


def _check_entries(
    bundle: Bundle, checkpoint: Checkpoint, scan: _Scan, findings: list[Finding]
) -> bool:
    """Uniqueness, count and root; return whether the first ``size`` entries are the signed log."""
    if scan.first_duplicate is not None:
        earlier, later, value = scan.first_duplicate
        first = f"{earlier:,}"
        more = scan.duplicates - 1
        follow = "entry follows" if more == 1 else "entries follow"
        also = f" ({more:,} more repeated {follow})" if more else ""
        findings.append(
            Finding(
                "duplicate-entry",
                f"Entries {first} and {later:,} (counting from 0) are the same dedup key "
                f"{value.hex()[:16]}\u2026, expected every entry once{also}.",
            )
        )
    size, count = checkpoint.size, scan.count
    if count < size:
        findings.append(
            Finding(
                "missing-entries",
                f"{_count(size - count, 'entry', 'entries')} missing: the checkpoint signs "
                f"{size:,} entries, "
                f"the bundle holds {count:,}.",
            )
        )
        return False
    if count > size:
        findings.append(
            Finding(
                "extra-entries",
                f"{_count(count - size, 'extra entry', 'extra entries')}: the checkpoint signs "
                f"{size:,} entries, "
                f"the bundle holds {count:,}.",
            )
        )
    computed = scan.roots[size]
    if computed != checkpoint.root:
        findings.append(
            Finding(
                "root-mismatch",
                f"The log content differs from what was signed: the first {size:,} entries "
                f"give the root {_short(computed)}, the checkpoint signs "
                f"{_short(checkpoint.root)}, so an entry was replaced, removed, inserted or "
                "reordered.",
            )
        )
        return False
    return True


def _check_extension(
    previous: Checkpoint,
    checkpoint: Checkpoint,
    scan: _Scan,
    entries_match: bool,
    consistency: ConsistencySource | None,
    findings: list[Finding],
) -> None:
    """The previous checkpoint (smaller) must be a prefix of this one."""
    old = previous.size
    prefix_root: bytes | None
    if old == 0:
        prefix_root = empty_root()
    elif entries_match:
        prefix_root = scan.roots[old]
    else:
        # The entries are not the signed log, so their prefix says nothing about it.
        prefix_root = None
    extends = None if prefix_root is None else prefix_root == previous.root
    if prefix_root is not None and not extends:
        findings.append(
            Finding(
                "not-extension",
                f"The log is not an extension of the previous checkpoint (fork or rewrite): "
                f"its first {old:,} entries give the root {_short(prefix_root)}, the previous "
                f"checkpoint of size {old:,} signs {_short(previous.root)}.",
            )
        )
    if consistency is None or old == 0:
        return
    proof = consistency(old, checkpoint.size)
    try:
        verify_consistency(old, checkpoint.size, previous.root, checkpoint.root, proof)
    except MerkleError as exc:
        if extends is True:
            findings.append(
                Finding(
                    "bad-proof",
                    f"The server's consistency proof from size {old:,} to {checkpoint.size:,} "
                    f"does not verify ({exc.message}), although the entries show that the log "
                    "extends the previous checkpoint.",
                )
            )
        elif extends is None:
            findings.append(
                Finding(
                    "not-extension",
                    f"The log is not an extension of the previous checkpoint (fork or "
                    f"rewrite): the server's consistency proof from size {old:,} to "
                    f"{checkpoint.size:,} does not verify ({exc.message}).",
                )
            )
