"""Benchmark: publication time and peak memory against batch size and log size.

Not a test: it prints a table for bench/README.md. Every step runs in a process of its
own, which reports its own peak resident memory (VmHWM); the baseline is the same
process's peak just before it publishes (the service
open, the petition read).

    .venv/bin/python bench/publish_scale.py [--batches 1000 100000 1000000] [--rounds 2]

For each batch size, a fresh instance (SQLite, SQLCipher, as deployed) gets that many
pending rows (random 32-byte dedup keys straight into the table: Argon2id is measured
elsewhere). Then, ``--rounds`` times, interleaved so that the machine's drift hits both:

  raw   the bare inserts a publication must make: one leaf row and about two subtree
        rows per entry, the same executemany per chunk, committed, nothing read, hashed
        or deleted (into a scratch petition, so the pending rows stay)
  real  the publication itself (read in order, fold, hash, write, drain, sign, commit)

Each round fills a petition of its own (not timed), so every batch starts an empty log.
Last, a batch of 1,000 (the hourly batch) is published on top of each round's log of
the largest size and compared with the same batch on a log of the smallest size, again
interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP = 50_000


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _service(instance: Path, *, create: bool = False):  # type: ignore[no-untyped-def]
    from anonsign.config import load_settings
    from anonsign.instance import init_instance
    from anonsign.service import Service

    settings = load_settings({"ANONSIGN_INSTANCE": str(instance)}, publisher_period=0.0)
    if create:
        init_instance(settings, dev=True)
    return Service.open(settings, migrate=create)


def _petition(service, slug: str) -> str:  # type: ignore[no-untyped-def]
    """A petition to publish into, made as log_scale.py makes its own."""
    from log_scale import _petition as make_petition  # bench/, beside this script

    return str(make_petition(service, slug))


def step_fill(instance: Path, count: int, slug: str) -> dict[str, float]:
    service = _service(instance, create=not instance.exists())
    try:
        petition_id = service.petition(slug).id
    except Exception:
        petition_id = _petition(service, slug)
    with service.db.writing() as session:
        conn = session.connection()
        for start in range(0, count, STEP):
            conn.exec_driver_sql(
                "INSERT INTO pending_signatures (petition_id, id, dedup_key) VALUES (?, ?, ?)",
                [
                    (petition_id, os.urandom(16), os.urandom(32))
                    for _ in range(min(STEP, count - start))
                ],
            )
    return {}


def step_raw(instance: Path, count: int, slug: str) -> dict[str, float]:
    """The leaf and node rows a publication of ``count`` entries writes, and nothing else."""
    service = _service(instance)
    petition_id = _petition(service, slug)
    hwm = _vm_hwm_mib()
    started = time.perf_counter()
    size = 0
    with service.db.writing() as session:
        conn = session.connection()
        for start in range(0, count, STEP):
            # In order across the whole batch, as a publication writes them: the entry
            # index then grows at its right edge, as it does under a real batch.
            entries = [
                ((i << 256) // count + int.from_bytes(os.urandom(8), "big")).to_bytes(32, "big")
                for i in range(start, min(start + STEP, count))
            ]
            leaves, nodes = [], []
            for entry in entries:
                leaves.append((petition_id, size, entry))
                nodes.append((petition_id, 0, size, entry))
                index, level = size, 0
                while index & 1:  # the subtrees this leaf completes
                    index, level = index >> 1, level + 1
                    nodes.append((petition_id, level, index, entry))
                size += 1
            conn.exec_driver_sql(
                "INSERT INTO log_leaves (petition_id, idx, entry) VALUES (?, ?, ?)", leaves
            )
            conn.exec_driver_sql(
                "INSERT INTO log_nodes (petition_id, level, idx, hash) VALUES (?, ?, ?, ?)",
                nodes,
            )
    return {"seconds": time.perf_counter() - started, "baseline_mib": hwm}


def step_real(instance: Path, count: int, slug: str) -> dict[str, float]:
    service = _service(instance)
    service.petition(slug)
    service.checkpoint(slug)
    hwm = _vm_hwm_mib()
    started = time.perf_counter()
    checkpoint = service.publish(slug)
    elapsed = time.perf_counter() - started
    assert checkpoint is not None
    return {"seconds": elapsed, "baseline_mib": hwm, "size": float(checkpoint.size)}


STEPS = {"fill": step_fill, "raw": step_raw, "real": step_real}


def run(step: str, instance: Path, count: int, slug: str) -> dict[str, float]:
    """Run one step in a fresh process; its output carries its own peak RSS (VmHWM)."""
    command = [sys.executable, __file__, "--step", step, str(instance), str(count), slug]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)  # noqa: S603 - this script
        process.wait()
        out.seek(0)
        text = out.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{text}")
    result: dict[str, float] = json.loads(text.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--step", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step, instance, count, slug = args.step
        result = STEPS[step](Path(instance), int(count), slug)
        # The step's own peak: Linux carries a parent's high-water mark across execve,
        # so the parent's wait4 figure would be at least its own size.
        print(json.dumps({**result, "peak_mib": _vm_hwm_mib()}))
        return

    print("| batch | log before | round | raw inserts | publish | ratio | peak RSS (baseline) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="anonsign-publish-") as tmp:
        instances = {}
        for batch in args.batches:
            instance = Path(tmp) / f"i{batch}"
            instances[batch] = instance
            for r in range(args.rounds):
                # A petition of its own per round: each batch starts an empty log.
                run("fill", instance, batch, f"p{r}")
                raw = run("raw", instance, batch, f"raw{r}")
                real = run("real", instance, batch, f"p{r}")
                print(
                    f"| {batch:,} | {int(real['size']) - batch:,} | {r + 1} "
                    f"| {raw['seconds']:.2f} s | {real['seconds']:.2f} s "
                    f"| {real['seconds'] / raw['seconds']:.2f} "
                    f"| {real['peak_mib']:.0f} MiB ({real['baseline_mib']:.0f}) |",
                    flush=True,
                )
        # The hourly batch: 1,000 entries on the smallest and on the largest log (one
        # log when only one batch size was given).
        logs = sorted({min(args.batches), max(args.batches)})
        for r in range(args.rounds):
            times = {}
            for log in logs:
                run("fill", instances[log], 1000, f"p{r}")
                times[log] = run("real", instances[log], 1000, f"p{r}")
            for log in logs:
                t = times[log]
                ratio = t["seconds"] / times[logs[0]]["seconds"]
                print(
                    f"| 1,000 | {int(t['size']) - 1000:,} | {r + 1} | — | "
                    f"{t['seconds'] * 1000:.0f} ms | {ratio:.2f} vs the smallest log "
                    f"| {t['peak_mib']:.0f} MiB ({t['baseline_mib']:.0f}) |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
