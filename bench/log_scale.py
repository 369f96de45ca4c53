"""Benchmark: a 1,000,000-entry petition log — publish, export, verify offline.

Not a test: it prints times and peak memory for a report (bench/README.md). Each phase
runs in its own process so its peak resident memory is its own. Dedup keys are random
32-byte values inserted straight into the signatures table: the sign path's Argon2id
cost is measured elsewhere and would only slow the setup down.

    .venv/bin/python bench/log_scale.py [--entries 1000000] [--batch 1000]

Phases:
  publish   integrate all pending entries in one batch, sign the checkpoint
  marginal  publish a further batch of --batch entries at sizes 1k, ~size/2 and ~size,
            to show that publishing cost does not grow with the log (ratios)
  export    what `audit fetch` does, without HTTP: checkpoint, key, every leaf in pages
            of the server's page size, written as a bundle folder
  verify    `audit verify` on that folder
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]


def _service(instance: Path):  # type: ignore[no-untyped-def]
    from anonsign.config import load_settings
    from anonsign.instance import init_instance
    from anonsign.service import Service

    settings = load_settings({"ANONSIGN_INSTANCE": str(instance)}, publisher_period=0.0)
    init_instance(settings, dev=True)
    return Service.open(settings, migrate=True)


def _petition(service, slug: str) -> str:  # type: ignore[no-untyped-def]
    from anonsign.crypto.keyfile import OrganizerSecretKey
    from anonsign.domain.identifiers import IdentifierKind
    from anonsign.domain.petitions import Recipient

    petition = service.create_petition(
        slug=slug,
        title="Benchmark",
        text="Benchmark.",
        identifier_kind=IdentifierKind.TEXT,
        recipients=[Recipient("bench", OrganizerSecretKey.generate().public_key())],
    )
    return str(petition.id)


def _add_pending(service, petition_id: str, count: int) -> None:  # type: ignore[no-untyped-def]
    from anonsign.storage.models import PendingSignatureRow

    with service.db.writing() as session:
        for start in range(0, count, 50_000):
            rows = [
                {"petition_id": petition_id, "id": os.urandom(16), "dedup_key": os.urandom(32)}
                for _ in range(min(50_000, count - start))
            ]
            session.execute(insert(PendingSignatureRow), rows)


def phase_publish(instance: Path, entries: int) -> dict[str, float]:
    service = _service(instance)
    petition_id = _petition(service, "big")
    started = time.perf_counter()
    _add_pending(service, petition_id, entries)
    inserted = time.perf_counter() - started
    started = time.perf_counter()
    checkpoint = service.publish("big")
    published = time.perf_counter() - started
    assert checkpoint is not None
    assert checkpoint.size == entries
    return {"insert_pending_s": inserted, "publish_s": published}


def phase_marginal(instance: Path, entries: int, batch: int) -> dict[str, float]:
    """Publish one batch on top of a small log and on top of the big one."""
    service = _service(instance)
    times: dict[str, float] = {}
    small_id = _petition(service, "small")
    _add_pending(service, small_id, 1000)
    service.publish("small")
    for slug, petition_id, label in (("small", small_id, "at_1k"),):
        _add_pending(service, petition_id, batch)
        started = time.perf_counter()
        service.publish(slug)
        times[f"batch_{label}_s"] = time.perf_counter() - started
    big_id = service.petition("big").id
    _add_pending(service, big_id, batch)
    started = time.perf_counter()
    service.publish("big")
    times[f"batch_at_{entries // 1000}k_s"] = time.perf_counter() - started
    return times


def phase_export(instance: Path, out: Path) -> dict[str, float]:
    from anonsign.audit.bundle import write_bundle
    from anonsign.service import MAX_LEAVES_PAGE

    service = _service(instance)
    started = time.perf_counter()
    checkpoint = service.checkpoint("big")
    petition = service.petition("big")

    def pages():  # type: ignore[no-untyped-def]
        for start in range(0, checkpoint.size, MAX_LEAVES_PAGE):
            yield from service.leaves("big", start, min(checkpoint.size, start + MAX_LEAVES_PAGE))

    write_bundle(
        out,
        origin=petition.log_origin,
        source=None,
        key_text=service.verifier_key() + "\n",
        checkpoint_note=checkpoint.note,
        entries=pages(),
    )
    return {"export_s": time.perf_counter() - started}


def phase_verify(bundle: Path) -> dict[str, float]:
    from anonsign.audit.bundle import read_bundle
    from anonsign.audit.verify import verify_bundle

    key = (bundle / "key").read_text()
    started = time.perf_counter()
    report = verify_bundle(read_bundle(bundle), key.strip())
    elapsed = time.perf_counter() - started
    assert report.ok, report.to_json()
    return {"verify_s": elapsed, "verified_entries": float(report.size)}


def run_phase(args: list[str]) -> dict[str, float]:
    command = [sys.executable, __file__, "--phase", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603 - this script, re-run

    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        work = Path(rest[0])
        if name == "publish":
            out = phase_publish(work, args.entries)
        elif name == "marginal":
            out = phase_marginal(work, args.entries, args.batch)
        elif name == "export":
            out = phase_export(work, Path(rest[1]))
        else:
            out = phase_verify(Path(rest[1]))
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return

    with tempfile.TemporaryDirectory(prefix="anonsign-bench-") as tmp:
        instance, bundle = Path(tmp) / "instance", Path(tmp) / "bundle"
        common = ["--entries", str(args.entries), "--batch", str(args.batch)]
        results = {}
        for phase, extra in (
            ("publish", [str(instance)]),
            ("marginal", [str(instance)]),
            ("export", [str(instance), str(bundle)]),
            ("verify", [str(instance), str(bundle)]),
        ):
            results[phase] = run_phase([phase, *extra, *common])
            print(f"{phase:9s} {json.dumps(results[phase])}", flush=True)
        marginal = results["marginal"]
        big = next(
            v for k, v in marginal.items() if k.startswith("batch_at_") and k != "batch_at_1k_s"
        )
        print(
            f"publish of {args.batch} entries: {marginal['batch_at_1k_s'] * 1000:.0f} ms at 1k "
            f"entries vs {big * 1000:.0f} ms at {args.entries:,} "
            f"(ratio {big / marginal['batch_at_1k_s']:.2f})"
        )


if __name__ == "__main__":
    main()
