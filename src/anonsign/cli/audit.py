"""``anonsign audit``: fetch a petition's public log and check its count, on any machine.

Auditors (journalists, NGOs) run these with nothing but this package: no instance, no
server configuration, no secret. Nothing here imports Flask, SQLAlchemy or alembic; each
command imports what it needs when it runs. Errors are AnonsignError lines from the main
group; a log that fails its checks prints one line per finding and exits 1.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from anonsign.audit.bundle import Bundle, Progress
    from anonsign.audit.verify import Report

#: A verifier key is one line; a checkpoint note a few hundred bytes (1 MiB at most).
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_CHECKPOINT_FILE_BYTES = 4 * 1024 * 1024


@click.group("audit")
def audit() -> None:
    """Check a petition's public log: the count is distinct entries, nothing removed.

    Get the server's verifier key from the organizers (not only from the server), then
    `anonsign audit verify http://xyz.onion/p/demo --key server.vkey`. Keep each
    bundle's `checkpoint` file and pass it as --previous next time: that proves the log
    only grew. To reach an onion address, run the command under `torsocks` or set
    https_proxy/http_proxy to Tor's HTTPTunnelPort.
    """


def _read_small_text(path: Path, limit: int, what: str) -> str:
    from anonsign.audit.bundle import read_small_text

    return read_small_text(path, limit, what)


def _fetch_with_progress(url: str, out: Path) -> Bundle:
    """Fetch with a progress bar on standard error when it is a terminal."""
    from rich.console import Console
    from rich.progress import Progress as Bar

    from anonsign.audit.bundle import fetch

    console = Console(stderr=True)
    with Bar(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("Fetching the log", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report_progress: Progress = progress
        return fetch(url, out, report_progress)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


@audit.command("fetch")
@click.argument("url")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="New folder for the bundle (must not exist, or be empty).",
)
def fetch_command(url: str, out: Path) -> None:
    """Download a petition's log (key, checkpoint, every entry) into a bundle folder.

    URL is the petition's address, like http://xyz.onion/p/demo. The bundle can then be
    verified offline, shared, and kept: its `checkpoint` is the --previous of your next
    audit.
    """
    bundle = _fetch_with_progress(url, out)
    with (bundle.path / "leaves").open("rb") as fh:
        count = sum(1 for _ in fh)
    click.echo(
        f"Fetched {count:,} entries of {bundle.origin} into {bundle.path}; check them with "
        f"`anonsign audit verify {bundle.path} --key <the server's verifier key file>`."
    )


@audit.command("verify")
@click.argument("source")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The server's verifier key (<name>+<id>+<key>), as the organizers published it.",
)
@click.option(
    "--previous",
    "previous_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint you verified before (a bundle's `checkpoint` file): the log must extend it.",
)
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    metavar="KEY",
    help="A witness's verifier key (text, or a file holding it); give it once per witness.",
)
@click.option(
    "--quorum",
    type=click.IntRange(min=0),
    help="How many of the --witness keys must have cosigned (default: all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def verify_command(
    source: str,
    key_file: Path,
    previous_file: Path | None,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    as_json: bool,
) -> None:
    """Verify a log bundle folder, or a petition's address (fetched to a temporary folder).

    Checks the checkpoint's signature with --key, that every entry is distinct, that
    their number is the signed count and their Merkle root the signed root, with
    --previous that the log only grew, and with --witness that at least --quorum of
    those witnesses cosigned the checkpoint (each cosignature says the witness saw no
    other tree of this log). Exit status 0 only if every check passes.
    """
    from anonsign.crypto.cosign import CosignatureVerifier
    from anonsign.errors import AnonsignError

    witnesses = [
        _read_small_text(Path(k), MAX_KEY_FILE_BYTES, "witness key file").strip()
        if Path(k).is_file()
        else k
        for k in witness_keys
    ]
    for witness_key in witnesses:
        CosignatureVerifier.from_verifier_key(witness_key)  # a bad key is one error line
    quorum = len(witnesses) if quorum is None else quorum
    if quorum > len(witnesses):
        raise AnonsignError(
            f"--quorum {quorum} is more than the {len(witnesses)} --witness key(s) given."
        )
    from anonsign.audit.bundle import fetch_consistency, read_bundle
    from anonsign.audit.verify import ConsistencySource, verify_bundle

    key_text = _read_small_text(key_file, MAX_KEY_FILE_BYTES, "verifier key file")
    previous = (
        None
        if previous_file is None
        else _read_small_text(previous_file, MAX_CHECKPOINT_FILE_BYTES, "checkpoint file")
    )
    if _is_url(source):
        # Check the key before downloading a million entries with it.
        from anonsign.crypto.notes import NoteVerifier

        NoteVerifier.from_verifier_key(key_text)

        def consistency(old_size: int, new_size: int) -> list[bytes]:
            return fetch_consistency(source, old_size, new_size)

        proofs: ConsistencySource = consistency
        with tempfile.TemporaryDirectory(prefix="anonsign-audit-") as tmp:
            bundle = _fetch_with_progress(source, Path(tmp) / "bundle")
            report = verify_bundle(
                bundle,
                key_text,
                previous,
                consistency=proofs,
                witnesses=witnesses,
                quorum=quorum,
            )
    else:
        report = verify_bundle(
            read_bundle(Path(source)), key_text, previous, witnesses=witnesses, quorum=quorum
        )

    if as_json:
        click.echo(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        sys.exit(1)


def _print_report(report: Report) -> None:
    if not report.ok:
        for finding in report.findings:
            click.echo(f"FAIL {finding.kind}: {finding.message}")
        return
    import base64

    # In base64, as the checkpoint file and --json give it, so the three can be compared.
    root = base64.b64encode(report.root).decode("ascii") if report.root else "?"
    size = report.size or 0
    line = (
        f"OK: {size:,} distinct {'entry' if size == 1 else 'entries'} in {report.origin}, "
        f"root {root}, signed by {report.signed_by}"
    )
    if report.previous_size is not None:
        line += f", consistent with the previous checkpoint of size {report.previous_size:,}"
    if report.cosigned_by:
        line += f", cosigned by {', '.join(report.cosigned_by)}"
    click.echo(line + ".")


@audit.command("inclusion")
@click.argument("url")
@click.argument("entry")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The server's verifier key, obtained from the organizers.",
)
def inclusion_command(url: str, entry: str, key_file: Path) -> None:
    """Check that the log entry ENTRY is counted in the petition at URL.

    ENTRY is one 32-byte entry of the public log, as a line of the leaves file that
    `audit fetch` writes (base64) or in base64url. The latest checkpoint is checked
    against --key, then the server's inclusion proof against that checkpoint. Run it
    over Tor: the server learns which entry is asked. An entry in base64url may start
    with "-": put `--` before it (anonsign audit inclusion URL --key K -- ENTRY).
    """
    import base64
    import binascii

    from anonsign.audit.bundle import fetch_checkpoint, fetch_inclusion
    from anonsign.audit.checkpoint import Checkpoint
    from anonsign.audit.merkle import leaf_hash, verify_inclusion
    from anonsign.crypto.notes import NoteVerifier
    from anonsign.errors import AnonsignError

    try:
        raw = base64.urlsafe_b64decode(entry + "=" * (-len(entry) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise AnonsignError(
            "ENTRY must be one 32-byte log entry in base64, such as a line of the leaves file."
        )
    verifier = NoteVerifier.from_verifier_key(
        _read_small_text(key_file, MAX_KEY_FILE_BYTES, "verifier key").strip()
    )
    checkpoint = Checkpoint.parse(verifier.open(fetch_checkpoint(url)))
    if checkpoint.size == 0:
        raise AnonsignError("The log is still empty: check again after the next batch.")
    try:
        proof = fetch_inclusion(url, raw, checkpoint.size)
    except AnonsignError as exc:
        raise AnonsignError(
            f"Not in the published log of size {checkpoint.size} (yet): {exc.message} "
            "The count is published in batches; try again later."
        ) from None
    verify_inclusion(leaf_hash(raw), proof.index, proof.size, list(proof.hashes), checkpoint.root)
    click.echo(
        f"OK: the entry is counted, as entry {proof.index + 1:,} of {checkpoint.size:,} in "
        f"{checkpoint.origin}, in a checkpoint signed by {verifier.name}."
    )
