"""A batch of 200,000 publishes in bounded memory, and publishes the right tree.

"Publish only at close" (the defence against the n-1 attack) makes one batch of every
signature: publication must stream it, not hold it. The claim is measured as a sceptic
would: the publication runs in a process of its own, which reports its own peak
resident memory (VmHWM, not the parent's ``wait4`` figure, which Linux carries over
from the parent across ``execve``), and a second process that does everything but
publish gives the baseline. Holding the batch costs hundreds of bytes per entry in Python (the
rows read, the sorted keys, a leaf and two node rows each): several hundred MiB here,
far over the bound; streaming costs a chunk's worth, whatever the batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from anonsign.audit.bundle import read_bundle, write_bundle
from anonsign.audit.verify import verify_bundle
from anonsign.service import MAX_LEAVES_PAGE
from anonsign.storage.models import PendingContactRow, PendingSignatureRow, SealedContactRow
from tests.storage import publish_child

ROWS = 200_000
#: Growth of peak RSS allowed over the baseline process. Streaming measures a few tens
#: of MiB (one chunk of rows, leaves and nodes, and SQLite's page cache); the code that
#: held the whole batch measured several hundred.
BOUND_MIB = 64
ROOT = Path(__file__).resolve().parents[2]


def _run(step: str, instance: Path) -> str:
    """Run one step of ``publish_child`` in a fresh process; return its output."""
    process = subprocess.run(
        [sys.executable, "-m", "tests.storage.publish_child", step, str(instance), str(ROWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    return process.stdout


def _peak_mib(output: str) -> float:
    """The child's own peak RSS, which it prints as its last line."""
    return float(json.loads(output.splitlines()[-1])["peak_mib"])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_a_batch_of_200000_publishes_in_bounded_memory_and_right(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    expected = json.loads(_run("fill", instance).splitlines()[-1])
    baseline = _peak_mib(_run("baseline", instance))
    peak = _peak_mib(_run("publish", instance))
    assert peak - baseline < BOUND_MIB, (
        f"publishing {ROWS:,} pending rows grew peak RSS by {peak - baseline:.0f} MiB "
        f"({baseline:.0f} -> {peak:.0f}), over the {BOUND_MIB} MiB bound"
    )
    assert baseline > 20, f"the measurement sees no process ({baseline} MiB)"
    print(f"peak RSS: baseline {baseline:.0f} MiB, publish {peak:.0f} MiB")

    service = publish_child.open_service(instance)
    try:
        stored = service.checkpoint(publish_child.SLUG)
        with service.db.reading() as session:
            for table in (PendingSignatureRow, PendingContactRow):
                assert session.scalar(select(func.count()).select_from(table)) == 0
            assert session.scalar(select(func.count()).select_from(SealedContactRow)) == (
                publish_child.FIRST_BATCH // 100 + ROWS // 100
            )
        petition = service.petition(publish_child.SLUG)

        def pages():  # type: ignore[no-untyped-def]
            for start in range(0, stored.size, MAX_LEAVES_PAGE):
                end = min(stored.size, start + MAX_LEAVES_PAGE)
                yield from service.leaves(publish_child.SLUG, start, end)

        write_bundle(
            tmp_path / "bundle",
            origin=petition.log_origin,
            source=None,
            key_text=service.verifier_key() + "\n",
            checkpoint_note=stored.note,
            entries=pages(),
        )
        report = verify_bundle(read_bundle(tmp_path / "bundle"), service.verifier_key())
        assert report.ok, report.to_json()
        assert report.size == expected["size"]
        assert report.root is not None
        assert report.root.hex() == expected["root"], "not the root of the sorted entries"
    finally:
        service.close_connections()
