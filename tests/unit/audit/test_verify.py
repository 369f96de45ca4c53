"""The auditor's verdict: an honest log passes, and every kind of tampering is named.

Each case builds a bundle folder from an honest 50-entry log, changes one thing as a
dishonest server (or anyone between it and the auditor) would, and checks both the
finding kinds of :func:`verify_bundle` and that ``anonsign audit verify`` exits non-zero.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.logserver import HonestLog, make_log, write_log_bundle

from anonsign.audit import merkle
from anonsign.audit.bundle import read_bundle
from anonsign.audit.checkpoint import Checkpoint
from anonsign.audit.verify import (
    FINDING_KINDS,
    ConsistencySource,
    Finding,
    Report,
    verify_bundle,
)
from anonsign.cli import main
from anonsign.crypto.notes import InvalidVerifierKey, LogSigner
from anonsign.errors import AnonsignError


@dataclass
class Case:
    """A bundle folder, the key the auditor trusts, and maybe a previous checkpoint."""

    bundle: Path
    key: str
    previous: str | None = None


def verify(case: Case, consistency: ConsistencySource | None = None) -> Report:
    bundle = read_bundle(case.bundle)
    return verify_bundle(bundle, case.key, case.previous, consistency=consistency)


def kinds(report: Report) -> set[str]:
    return {finding.kind for finding in report.findings}


def run_cli(tmp_path: Path, case: Case, *extra: str) -> tuple[int, str]:
    key_file = tmp_path / "server.vkey"
    key_file.write_text(case.key + "\n")
    args = ["audit", "verify", str(case.bundle), "--key", str(key_file), *extra]
    if case.previous is not None:
        previous_file = tmp_path / "previous-checkpoint"
        previous_file.write_text(case.previous)
        args += ["--previous", str(previous_file)]
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def random_entry() -> bytes:
    return os.urandom(32)


# --- an honest log ------------------------------------------------------------------------


def test_an_honest_bundle_verifies(tmp_path: Path, log: HonestLog, bundle_dir: Path) -> None:
    report = verify(Case(bundle_dir, log.signer.verifier_key()))
    assert report.ok, report.findings
    assert (report.size, report.entries, report.distinct) == (50, 50, 50)
    assert report.origin == "log.example/demo"
    assert report.root == merkle.root(merkle.leaf_hash(e) for e in log.entries)
    assert report.signed_by == "log.example"
    assert report.previous_size is None


def test_an_honest_bundle_passes_the_cli(tmp_path: Path, log: HonestLog, bundle_dir: Path) -> None:
    code, output = run_cli(tmp_path, Case(bundle_dir, log.signer.verifier_key()))
    assert code == 0, output
    # The root as the checkpoint file writes it (its third line), and --json too.
    root = (bundle_dir / "checkpoint").read_text().splitlines()[2]
    assert root == base64.b64encode(log.checkpoint().root).decode("ascii")
    assert output == (
        f"OK: 50 distinct entries in log.example/demo, root {root}, signed by log.example.\n"
    )


def test_an_empty_log_verifies(tmp_path: Path, signer: LogSigner) -> None:
    empty = make_log(0, signer)
    bundle = write_log_bundle(tmp_path / "b", empty)
    assert (bundle / "leaves").read_bytes() == b""
    report = verify(Case(bundle, signer.verifier_key()))
    assert report.ok
    assert report.size == 0
    assert report.root == merkle.empty_root()


@pytest.mark.parametrize("previous_size", [0, 1, 30, 32, 49, 50])
def test_a_log_that_grew_from_a_previous_checkpoint_verifies(
    tmp_path: Path, log: HonestLog, bundle_dir: Path, previous_size: int
) -> None:
    case = Case(bundle_dir, log.signer.verifier_key(), log.note(previous_size))
    report = verify(case)
    assert report.ok, report.findings
    assert report.previous_size == previous_size
    code, output = run_cli(tmp_path, case)
    assert code == 0, output
    assert f"consistent with the previous checkpoint of size {previous_size}." in output


def test_the_servers_consistency_proof_is_checked_when_given(
    log: HonestLog, bundle_dir: Path
) -> None:
    asked: list[tuple[int, int]] = []

    def honest(old: int, new: int) -> list[bytes]:
        asked.append((old, new))
        return merkle.consistency_proof(old, new, log.store)

    case = Case(bundle_dir, log.signer.verifier_key(), log.note(30))
    assert verify(case, consistency=honest).ok
    assert asked == [(30, 50)]


def test_a_bad_consistency_proof_from_the_server_is_a_finding(
    log: HonestLog, bundle_dir: Path
) -> None:
    def bogus(old: int, new: int) -> list[bytes]:
        return [bytes(32)] * len(merkle.consistency_proof(old, new, log.store))

    report = verify(Case(bundle_dir, log.signer.verifier_key(), log.note(30)), consistency=bogus)
    assert kinds(report) == {"bad-proof"}
    assert "although the entries show that the log extends" in report.findings[0].message


def test_the_proof_alone_decides_when_the_entries_are_not_the_signed_log(
    tmp_path: Path, log: HonestLog
) -> None:
    """Entries that do not match the checkpoint say nothing about extension; the proof does."""
    entries = list(log.entries)
    entries[40] = random_entry()
    bundle = write_log_bundle(tmp_path / "b", log, entries=entries)
    forked = make_log(30, log.signer)
    case = Case(bundle, log.signer.verifier_key(), forked.note())

    def honest(old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(old, new, log.store)

    assert kinds(verify(case)) == {"root-mismatch"}
    assert kinds(verify(case, consistency=honest)) == {"root-mismatch", "not-extension"}


def test_the_report_as_json(log: HonestLog, bundle_dir: Path) -> None:
    report = verify(Case(bundle_dir, log.signer.verifier_key(), log.note(20)))
    data = json.loads(report.to_json())
    assert data == {
        "format": "anonsign-audit-report-v1",
        "ok": True,
        "origin": "log.example/demo",
        "size": 50,
        "root": Checkpoint.parse(log.note().split("\n\n")[0] + "\n").to_text().split("\n")[2],
        "signed_by": "log.example",
        "key": log.signer.verifier_key(),
        "entries": 50,
        "distinct": 50,
        "previous_size": 20,
        "cosigned_by": [],
        "quorum": 0,
        "findings": [],
    }


def test_an_invalid_trusted_key_is_an_error_not_a_finding(bundle_dir: Path) -> None:
    with pytest.raises(InvalidVerifierKey):
        verify(Case(bundle_dir, "not a key"))


def test_findings_have_known_kinds() -> None:
    with pytest.raises(ValueError, match="unknown finding kind"):
        Finding("bad", "x")


# --- tampering ----------------------------------------------------------------------------

Tamper = Callable[[Path, HonestLog, LogSigner], Case]


def _entries(change: Callable[[list[bytes]], None]) -> Tamper:
    def tamper(path: Path, log: HonestLog, other: LogSigner) -> Case:
        entries = list(log.entries)
        change(entries)
        return Case(write_log_bundle(path, log, entries=entries), log.signer.verifier_key())

    return tamper


def _replace(entries: list[bytes]) -> None:
    entries[17] = random_entry()


def _replace_by_copy(entries: list[bytes]) -> None:
    entries[17] = entries[3]


def _remove(entries: list[bytes]) -> None:
    del entries[17]


def _remove_last(entries: list[bytes]) -> None:
    entries.pop()


def _insert(entries: list[bytes]) -> None:
    entries.insert(20, random_entry())


def _duplicate(entries: list[bytes]) -> None:
    entries.insert(20, entries[5])


def _append(entries: list[bytes]) -> None:
    entries.append(random_entry())


def _reorder(entries: list[bytes]) -> None:
    entries[10], entries[11] = entries[11], entries[10]


def _edited_size(path: Path, log: HonestLog, other: LogSigner) -> Case:
    note = log.note().replace("\n50\n", "\n51\n", 1)
    return Case(write_log_bundle(path, log, note=note), log.signer.verifier_key())


def _signed_larger_size(path: Path, log: HonestLog, other: LogSigner) -> Case:
    lie = Checkpoint(log.origin, 51, log.checkpoint().root)
    note = log.signer.sign(lie.to_text())
    return Case(write_log_bundle(path, log, note=note), log.signer.verifier_key())


def _signed_smaller_size(path: Path, log: HonestLog, other: LogSigner) -> Case:
    lie = Checkpoint(log.origin, 49, log.checkpoint().root)
    note = log.signer.sign(lie.to_text())
    return Case(write_log_bundle(path, log, note=note), log.signer.verifier_key())


def _signed_by_other_key(path: Path, log: HonestLog, other: LogSigner) -> Case:
    note = log.note(signer=other)
    return Case(write_log_bundle(path, log, note=note), log.signer.verifier_key())


def _wrong_trusted_key(path: Path, log: HonestLog, other: LogSigner) -> Case:
    return Case(write_log_bundle(path, log), other.verifier_key())


def _impostor_bundle(path: Path, log: HonestLog, other: LogSigner) -> Case:
    """All signed by another key, which the bundle hands out: the trusted key catches it."""
    bundle = write_log_bundle(
        path, log, note=log.note(signer=other), key_text=other.verifier_key() + "\n"
    )
    return Case(bundle, log.signer.verifier_key())


def _other_key_in_bundle(path: Path, log: HonestLog, other: LogSigner) -> Case:
    bundle = write_log_bundle(path, log, key_text=other.verifier_key() + "\n")
    return Case(bundle, log.signer.verifier_key())


def _garbage_key_in_bundle(path: Path, log: HonestLog, other: LogSigner) -> Case:
    return Case(write_log_bundle(path, log, key_text="hello\n"), log.signer.verifier_key())


def _fork(path: Path, log: HonestLog, other: LogSigner) -> Case:
    previous = log.signer.sign(Checkpoint(log.origin, 50, random_entry()).to_text())
    return Case(write_log_bundle(path, log), log.signer.verifier_key(), previous)


def _shrink(path: Path, log: HonestLog, other: LogSigner) -> Case:
    bigger = HonestLog(log.signer, log.slug, list(log.entries))
    bigger.grow(10)
    return Case(write_log_bundle(path, log), log.signer.verifier_key(), bigger.note())


def _not_a_prefix(path: Path, log: HonestLog, other: LogSigner) -> Case:
    rewritten = make_log(30, log.signer)
    return Case(write_log_bundle(path, log), log.signer.verifier_key(), rewritten.note())


def _not_a_prefix_one_entry(path: Path, log: HonestLog, other: LogSigner) -> Case:
    entries = list(log.entries[:30])
    entries[29] = random_entry()
    rewritten = HonestLog(log.signer, log.slug, entries)
    return Case(write_log_bundle(path, log), log.signer.verifier_key(), rewritten.note())


def _previous_nonempty_root_at_zero(path: Path, log: HonestLog, other: LogSigner) -> Case:
    previous = log.signer.sign(Checkpoint(log.origin, 0, random_entry()).to_text())
    return Case(write_log_bundle(path, log), log.signer.verifier_key(), previous)


def _previous_by_other_key(path: Path, log: HonestLog, other: LogSigner) -> Case:
    return Case(write_log_bundle(path, log), log.signer.verifier_key(), log.note(30, other))


def _previous_other_petition(path: Path, log: HonestLog, other: LogSigner) -> Case:
    elsewhere = make_log(30, log.signer, slug="another")
    return Case(write_log_bundle(path, log), log.signer.verifier_key(), elsewhere.note())


def _previous_garbage(path: Path, log: HonestLog, other: LogSigner) -> Case:
    return Case(write_log_bundle(path, log), log.signer.verifier_key(), "not a note\n")


def _bundle_says_other_origin(path: Path, log: HonestLog, other: LogSigner) -> Case:
    bundle = write_log_bundle(path, log, origin="log.example/another")
    return Case(bundle, log.signer.verifier_key())


def _checkpoint_of_another_petition(path: Path, log: HonestLog, other: LogSigner) -> Case:
    """A genuine checkpoint of petition 'another' in a bundle fetched from /p/demo."""
    elsewhere = make_log(50, log.signer, slug="another")
    bundle = write_log_bundle(
        path,
        elsewhere,
        source="http://xyz.onion/p/demo",
    )
    return Case(bundle, log.signer.verifier_key())


def _origin_of_another_log(path: Path, log: HonestLog, other: LogSigner) -> Case:
    foreign = Checkpoint("other.example/demo", 50, log.checkpoint().root)
    note = log.signer.sign(foreign.to_text())
    bundle = write_log_bundle(path, log, note=note, origin="other.example/demo")
    return Case(bundle, log.signer.verifier_key())


def _bad_leaves_line(path: Path, log: HonestLog, other: LogSigner) -> Case:
    bundle = write_log_bundle(path, log)
    lines = (bundle / "leaves").read_text().splitlines(keepends=True)
    lines[7] = lines[7][:-3] + "\n"
    (bundle / "leaves").write_text("".join(lines))
    return Case(bundle, log.signer.verifier_key())


def _checkpoint_not_a_checkpoint(path: Path, log: HonestLog, other: LogSigner) -> Case:
    note = log.signer.sign("log.example/demo\nfifty\nroot\n")
    return Case(write_log_bundle(path, log, note=note), log.signer.verifier_key())


TAMPERINGS: dict[str, tuple[Tamper, set[str]]] = {
    "entry replaced": (_entries(_replace), {"root-mismatch"}),
    "entry replaced by a copy": (_entries(_replace_by_copy), {"duplicate-entry", "root-mismatch"}),
    "entry removed": (_entries(_remove), {"missing-entries"}),
    "last entry removed": (_entries(_remove_last), {"missing-entries"}),
    "entry inserted": (_entries(_insert), {"extra-entries", "root-mismatch"}),
    "entry duplicated": (
        _entries(_duplicate),
        {"duplicate-entry", "extra-entries", "root-mismatch"},
    ),
    "entry appended": (_entries(_append), {"extra-entries"}),
    "entries reordered": (_entries(_reorder), {"root-mismatch"}),
    "checkpoint size edited": (_edited_size, {"bad-signature"}),
    "checkpoint signs a larger size": (_signed_larger_size, {"missing-entries"}),
    "checkpoint signs a smaller size": (_signed_smaller_size, {"extra-entries", "root-mismatch"}),
    "checkpoint signed by another key": (_signed_by_other_key, {"bad-signature"}),
    "wrong --key": (_wrong_trusted_key, {"bad-signature", "wrong-key"}),
    "impostor bundle": (_impostor_bundle, {"bad-signature", "wrong-key"}),
    "another key in the bundle": (_other_key_in_bundle, {"wrong-key"}),
    "garbage key in the bundle": (_garbage_key_in_bundle, {"wrong-key"}),
    "fork": (_fork, {"fork"}),
    "shrink": (_shrink, {"shrink"}),
    "previous not a prefix": (_not_a_prefix, {"not-extension"}),
    "previous differs in one entry": (_not_a_prefix_one_entry, {"not-extension"}),
    "previous empty tree with a root": (_previous_nonempty_root_at_zero, {"not-extension"}),
    "previous signed by another key": (_previous_by_other_key, {"bad-signature"}),
    "previous of another petition": (_previous_other_petition, {"origin-mismatch"}),
    "previous not a note": (_previous_garbage, {"malformed"}),
    "bundle names another origin": (_bundle_says_other_origin, {"origin-mismatch"}),
    "checkpoint of another petition": (_checkpoint_of_another_petition, {"origin-mismatch"}),
    "origin of another log": (_origin_of_another_log, {"origin-mismatch"}),
    "bad leaves line": (_bad_leaves_line, {"malformed"}),
    "checkpoint body malformed": (_checkpoint_not_a_checkpoint, {"malformed"}),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_tampering_is_found_and_fails_the_cli(
    tmp_path: Path, log: HonestLog, other_signer: LogSigner, name: str
) -> None:
    tamper, expected = TAMPERINGS[name]
    case = tamper(tmp_path / "bundle", log, other_signer)
    report = verify(case)
    assert not report.ok
    assert kinds(report) == expected, report.findings
    assert expected <= FINDING_KINDS
    for finding in report.findings:
        assert "\n" not in finding.message, finding
        assert finding.message.endswith("."), finding

    code, output = run_cli(tmp_path, case)
    assert code == 1, output
    assert [line.split(":")[0] for line in output.splitlines()] == [
        f"FAIL {finding.kind}" for finding in report.findings
    ]

    code, output = run_cli(tmp_path, case, "--json")
    assert code == 1
    data = json.loads(output)
    assert data["ok"] is False
    assert {f["kind"] for f in data["findings"]} == expected


def test_a_duplicate_names_both_indexes(tmp_path: Path, log: HonestLog) -> None:
    entries = list(log.entries)
    entries[40] = entries[12]
    entries[45] = entries[12]
    report = verify(
        Case(write_log_bundle(tmp_path / "b", log, entries=entries), log.signer.verifier_key())
    )
    duplicate = next(f for f in report.findings if f.kind == "duplicate-entry")
    assert duplicate.message.startswith("Entries 12 and 40 (counting from 0)")
    assert "(1 more repeated entry follows)" in duplicate.message
    assert report.distinct == 48


def test_counts_are_named_in_findings(tmp_path: Path, log: HonestLog) -> None:
    report = verify(
        Case(
            write_log_bundle(tmp_path / "b", log, entries=log.entries[:47]),
            log.signer.verifier_key(),
        )
    )
    assert [f.message for f in report.findings] == [
        "3 entries missing: the checkpoint signs 50 entries, the bundle holds 47."
    ]


def test_a_shrink_names_both_sizes(tmp_path: Path, log: HonestLog, other_signer: LogSigner) -> None:
    report = verify(_shrink(tmp_path / "b", log, other_signer))
    assert report.findings[0].message.startswith("The log shrank from 60 to 50 entries")


def test_a_fork_says_fork(tmp_path: Path, log: HonestLog, other_signer: LogSigner) -> None:
    report = verify(_fork(tmp_path / "b", log, other_signer))
    assert report.findings[0].message.startswith("Fork: two checkpoints of size 50 with different")


def test_a_rewrite_is_named(tmp_path: Path, log: HonestLog, other_signer: LogSigner) -> None:
    report = verify(_not_a_prefix(tmp_path / "b", log, other_signer))
    assert report.findings[0].message.startswith(
        "The log is not an extension of the previous checkpoint (fork or rewrite)"
    )


def test_a_root_mismatch_is_explained(tmp_path: Path, log: HonestLog) -> None:
    report = verify(_entries(_reorder)(tmp_path / "b", log, log.signer))
    assert report.findings[0].message.startswith("The log content differs from what was signed")
    assert "replaced, removed, inserted or reordered" in report.findings[0].message


def test_the_signature_is_checked_before_anything_is_read(
    tmp_path: Path, log: HonestLog, other_signer: LogSigner
) -> None:
    """An unverified checkpoint's text is never used: no size, no root, no entry count."""
    report = verify(_signed_by_other_key(tmp_path / "b", log, other_signer))
    assert (report.origin, report.size, report.root, report.entries) == (None, None, None, None)
    assert report.findings[0].message.startswith("The checkpoint is not signed by log.example+")


def test_a_bundle_that_cannot_be_read_is_an_error(tmp_path: Path, log: HonestLog) -> None:
    with pytest.raises(AnonsignError, match="is not a folder"):
        read_bundle(tmp_path / "nothing-here")
