"""One step of the large-batch memory test, run as its own process (see test_publish_memory).

    python -m tests.storage.publish_child fill|baseline|publish <instance folder> <rows>

``fill`` makes an instance and a petition, publishes a first small batch, then inserts
``rows`` pending rows straight through the storage layer (no HTTP, no Argon2id): mostly
new random entries, some repeated within the batch, some repeating published entries,
and one contact per hundred rows. It prints the root the batch must publish, computed
here from the sorted, deduplicated entries with the Merkle module's own ``root``.
``baseline`` opens the same service and reads the petition, as ``publish`` does, but
publishes nothing: the parent compares the two processes' peak resident memory, which
each of them prints as its last line (its own VmHWM).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from anonsign.audit.merkle import leaf_hash, root
from anonsign.config import load_settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import Recipient
from anonsign.instance import init_instance
from anonsign.service import Service

SLUG = "big"
FIRST_BATCH = 1000
#: Rows per insert while filling: the fill is not what the test measures.
FILL_STEP = 20_000


def peak_rss_mib() -> float:
    """This process's own high-water resident memory (VmHWM), in MiB.

    Not the parent's ``wait4`` figure: Linux carries the high-water mark across
    ``execve``, so a child of a pytest worker that has grown to 500 MiB reports 500 MiB
    of its own, and the bound would measure the worker instead of the publication.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status")


def open_service(instance: Path) -> Service:
    return Service.open(load_settings({"ANONSIGN_INSTANCE": str(instance)}, publisher_period=0.0))


def fill(instance: Path, rows: int) -> dict[str, object]:
    settings = load_settings({"ANONSIGN_INSTANCE": str(instance)}, publisher_period=0.0)
    init_instance(settings, dev=True)
    service = Service.open(settings, migrate=True)
    petition = service.create_petition(
        slug=SLUG,
        title="Big",
        text="A batch published at close.",
        identifier_kind=IdentifierKind.TEXT,
        recipients=[Recipient("alice", OrganizerSecretKey.generate().public_key())],
    )
    draws = random.Random(1)  # noqa: S311 - test data, reproducible
    first = [draws.randbytes(32) for _ in range(FIRST_BATCH)]
    _insert(service, petition.id, first, draws)
    assert service.publish(SLUG) is not None
    new: list[bytes] = []
    for start in range(0, rows, FILL_STEP):
        step = min(FILL_STEP, rows - start)
        keys = []
        for _ in range(step):
            kind = draws.random()
            if kind < 0.03 and new:
                keys.append(draws.choice(new))  # a repeat within the batch
            elif kind < 0.05:
                keys.append(draws.choice(first))  # a repeat of a published signer
            else:
                keys.append(draws.randbytes(32))
                new.append(keys[-1])
        _insert(service, petition.id, keys, draws)
    # Each batch lies sorted by value: the first one too.
    entries = sorted(first) + sorted(set(new) - set(first))
    return {"size": len(entries), "root": root(leaf_hash(e) for e in entries).hex()}


def _insert(service: Service, petition_id: str, keys: list[bytes], draws: random.Random) -> None:
    from sqlalchemy import insert

    from anonsign.storage.models import PendingContactRow, PendingSignatureRow

    with service.db.writing() as session:
        session.execute(
            insert(PendingSignatureRow.__table__),
            [{"petition_id": petition_id, "id": draws.randbytes(16), "dedup_key": k} for k in keys],
        )
        session.execute(
            insert(PendingContactRow.__table__),
            [
                {"petition_id": petition_id, "id": draws.randbytes(16), "sealed": bytes(300)}
                for _ in range(len(keys) // 100)
            ],
        )


def main() -> None:
    step, instance, rows = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if step == "fill":
        print(json.dumps(fill(instance, rows)))
        return
    service = open_service(instance)
    service.petition(SLUG)
    service.checkpoint(SLUG)
    if step == "publish":
        checkpoint = service.publish(SLUG)
        assert checkpoint is not None
    service.close_connections()
    print(json.dumps({"peak_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
