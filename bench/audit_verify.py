"""Benchmark: `anonsign audit verify` on logs of 1,000,000 and 10,000,000 entries.

An auditor verifies a whole log on their own machine: signature, uniqueness of every
entry, count and the RFC 9162 root. This builds, for each size, a bundle as `audit
fetch` writes it (random 32-byte entries, the checkpoint signed by a fresh log key; a
server is not needed, and publishing ten million signatures would take an hour), then
runs the verification in a process of its own, which reports its own peak resident
memory. The point: memory must not grow with the log.

    .venv/bin/python bench/audit_verify.py [--entries 1000000 10000000]

It needs about 100 bytes of disk per entry (the bundle, 45, and the sorted runs of the
uniqueness check, 40) in the temporary folder (``TMPDIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LOG_NAME = "bench.anonsign.example"


def build(out: Path, entries: int) -> float:
    """Write a valid bundle of ``entries`` random entries; return the seconds it took."""
    from anonsign.audit.bundle import write_bundle
    from anonsign.audit.checkpoint import Checkpoint, make_origin
    from anonsign.audit.merkle import CompactRange, leaf_hash
    from anonsign.crypto.notes import LogSigner

    started = time.perf_counter()
    signer = LogSigner.generate(LOG_NAME)
    origin = make_origin(LOG_NAME, "bench")
    tree = CompactRange()
    chunk = 100_000

    def values() -> Iterator[bytes]:
        left = entries
        while left:
            n = min(chunk, left)
            block = os.urandom(32 * n)
            batch = [block[i : i + 32] for i in range(0, len(block), 32)]
            tree.extend(leaf_hash(entry) for entry in batch)
            yield from batch
            left -= n

    # The entries are written before the checkpoint can be signed: write them to a first
    # bundle, then the real one, reusing its leaves file.
    scratch = out.with_name(out.name + ".leaves")
    write_bundle(scratch, origin=origin, source=None, key_text=signer.verifier_key(),
                 checkpoint_note="", entries=values())  # fmt: skip
    note = signer.sign(Checkpoint(origin, tree.size, tree.root()).to_text())
    out.mkdir()
    (out / "key").write_text(signer.verifier_key() + "\n")
    (out / "checkpoint").write_text(note)
    (scratch / "leaves").rename(out / "leaves")
    (scratch / "bundle.json").rename(out / "bundle.json")
    return time.perf_counter() - started


def verify_child(bundle: str) -> None:
    from anonsign.audit.bundle import read_bundle
    from anonsign.audit.verify import verify_bundle

    path = Path(bundle)
    started = time.perf_counter()
    report = verify_bundle(read_bundle(path), (path / "key").read_text().strip())
    elapsed = time.perf_counter() - started
    assert report.ok, report.to_json()
    print(json.dumps({"seconds": elapsed, "entries": report.size, "peak_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's own high-water resident memory (VmHWM).

    Not the parent's ``wait4`` figure: Linux carries the high-water mark across
    ``execve``, so a child started by a parent that built ten million entries would
    report the parent's peak, not its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status: this benchmark needs Linux")


def verify(bundle: Path) -> tuple[float, int, float]:
    """Seconds, entries and peak RSS in MiB of one `audit verify` in its own process."""
    process = subprocess.Popen(  # noqa: S603 - this script, in a child
        [sys.executable, __file__, "--verify-child", str(bundle)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    output = process.stdout.read()
    if process.wait() != 0:
        raise SystemExit(f"the verification failed with status {process.returncode}")
    result = json.loads(output)
    return result["seconds"], result["entries"], result["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--verify-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verify_child:
        verify_child(args.verify_child)
        return
    for entries in args.entries:
        with tempfile.TemporaryDirectory(prefix="anonsign-bench-audit-") as tmp:
            bundle = Path(tmp) / "bundle"
            built = build(bundle, entries)
            seconds, verified, peak = verify(bundle)
            print(f"{entries:>12,} entries: built in {built:.1f} s; audit verify "
                  f"{seconds:.1f} s ({verified / seconds:,.0f} entries/s), peak RSS "
                  f"{peak:.0f} MiB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
