"""Benchmark: how long PostgreSQL's ``VACUUM FULL`` after a batch holds signers back.

After every batch the publisher rewrites the pending tables with ``VACUUM FULL``, so that
the deleted rows' versions (which kept the arrival order) leave the table files. It takes
an ACCESS EXCLUSIVE lock: every signature's insert waits for it. This measures, for each
batch size, on a fresh database of the PostgreSQL server given:

  publish  the publication itself (read, fold, hash, write the log, delete the rows),
           without the vacuum: a probe signer inserting a pending row every 10 ms
           meanwhile, whose longest wait says whether publication blocks signers;
  vacuum   ``VACUUM FULL`` of the two pending tables, timed, with the same probe.

    .venv/bin/python bench/vacuum_pause.py --postgres postgresql://postgres@127.0.0.1/postgres \\
        [--batches 1000 100000 1000000]

The rows go straight into the table (random dedup keys: Argon2id is measured elsewhere).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

STEP = 50_000
PROBE_PERIOD = 0.01


class Probe:
    """A signer inserting one pending row (its own transaction) every 10 ms."""

    def __init__(self, service, petition_id: str) -> None:  # type: ignore[no-untyped-def]
        self._service = service
        self._petition_id = petition_id
        self._stop = threading.Event()
        self.waits: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from anonsign.storage.models import PendingSignatureRow

        while not self._stop.is_set():
            started = time.perf_counter()
            with self._service.db.writing() as session:
                session.add(
                    PendingSignatureRow(
                        petition_id=self._petition_id, id=os.urandom(16), dedup_key=os.urandom(32)
                    )
                )
            self.waits.append(time.perf_counter() - started)
            time.sleep(PROBE_PERIOD)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.waits:
            return "no insert"
        ordered = sorted(self.waits)
        median = ordered[len(ordered) // 2]
        return (
            f"{len(ordered)} inserts, median {median * 1000:.0f} ms, "
            f"longest {ordered[-1] * 1000:.0f} ms"
        )


def one_batch(admin_url: str, count: int) -> None:
    from log_scale import _petition as make_petition
    from sign_throughput import fresh_database
    from sqlalchemy import insert

    from anonsign.config import load_settings
    from anonsign.instance import init_instance
    from anonsign.publisher import publish
    from anonsign.service import PENDING_TABLES, Service
    from anonsign.storage.models import PendingSignatureRow
    from anonsign.storage.repository import Repository

    with (
        fresh_database(admin_url) as database,
        tempfile.TemporaryDirectory(prefix="anonsign-bench-vacuum-") as tmp,
    ):
        settings = load_settings(
            {"ANONSIGN_INSTANCE": str(Path(tmp) / "instance"), "ANONSIGN_DATABASE_URL": database},
            publisher_period=0.0,
        )
        init_instance(settings, dev=True)
        service = Service.open(settings, migrate=True)
        try:
            batch_id = make_petition(service, "batch")
            probe_id = make_petition(service, "probe")
            with service.db.writing() as session:
                for start in range(0, count, STEP):
                    session.execute(
                        insert(PendingSignatureRow),
                        [
                            {
                                "petition_id": batch_id,
                                "id": os.urandom(16),
                                "dedup_key": os.urandom(32),
                            }
                            for _ in range(min(STEP, count - start))
                        ],
                    )
            with Probe(service, probe_id) as during_publish:
                started = time.perf_counter()
                with service.db.writing() as session:
                    petition = Repository(session).petition("batch", lock="publish")
                    checkpoint = publish(session, petition, service._log_signer, policy=None)
                published = time.perf_counter() - started
            assert checkpoint is not None
            assert checkpoint.size == count
            with Probe(service, probe_id) as during_vacuum:
                time.sleep(0.1)  # the probe is inserting when the lock is taken
                started = time.perf_counter()
                service.db.scrub(*PENDING_TABLES)
                vacuumed = time.perf_counter() - started
                time.sleep(0.1)
        finally:
            service.close_connections()
    print(f"| {count:,} | {published:.2f} s | {during_publish.summary()} "
          f"| {vacuumed * 1000:.0f} ms | {during_vacuum.summary()} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, metavar="ADMIN_URL")
    parser.add_argument("--batches", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    args = parser.parse_args()
    meanwhile = "a signer's insert meanwhile"
    print(f"| batch | publish | {meanwhile} | VACUUM FULL | {meanwhile} |")
    print("|---|---|---|---|---|")
    for count in args.batches:
        one_batch(args.postgres, count)


if __name__ == "__main__":
    main()
