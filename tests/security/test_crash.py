"""An accepted signature survives a crash of the server right after its answer.

A real gunicorn server takes signatures from several clients at once; the whole process
group is killed with SIGKILL mid-stream; every signature that got its thank-you page
must be in the database, which must be intact.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.master import unwrap_pepper
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.signing import prepare_signature
from anonsign.instance import load_server_keys
from anonsign.service import Service
from anonsign.storage.models import LogLeafRow, PendingSignatureRow
from anonsign.storage.repository import Repository
from tests.conftest import make_petition
from tests.live import Browser, free_port, running

CLIENTS = 4


def dedup_key_of(service: Service, slug: str, identifier: str) -> bytes:
    """Recompute a dedup key as the server does (a test may hold the master key)."""
    with service.db.reading() as session:
        petition, wrapped = Repository(session).petition_with_pepper(slug)
    assert wrapped is not None
    pepper = unwrap_pepper(load_server_keys(service.settings).master, petition.id, wrapped)
    return prepare_signature(petition, pepper, identifier, "").dedup_key


def stored_dedup_keys(service: Service) -> set[bytes]:
    with service.db.reading() as session:
        pending = session.scalars(select(PendingSignatureRow.dedup_key))
        published = session.scalars(select(LogLeafRow.entry))
        return {bytes(k) for k in [*pending, *published]}


RUN_SECONDS = 2.0


@pytest.mark.slow
def test_acknowledged_signatures_survive_kill_9(
    tmp_path: Path, service: Service, settings: Settings, organizer: OrganizerSecretKey
) -> None:
    make_petition(service, organizer, "crash", IdentifierKind.TEXT)
    port = free_port()
    env = {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": "2",
    }
    acknowledged: list[str] = []
    attempted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        browser = Browser(f"http://127.0.0.1:{port}")
        i = 0
        while not stop.is_set():
            identifier = f"id-{n}-{i}"
            i += 1
            with lock:
                attempted.append(identifier)
            try:
                status, _ = browser.sign("crash", identifier, f"contact {n}-{i}")
            except (OSError, AssertionError, http.client.HTTPException):
                return  # the server is gone (mid-answer: IncompleteRead)
            if status == 200:
                with lock:
                    acknowledged.append(identifier)

    with running(["serve", "--port", str(port)], env, port, tmp_path / "server.log") as server:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(RUN_SECONDS)
        # On a loaded machine the clients may start slowly: crash only once the load runs.
        deadline = time.monotonic() + 30
        while len(acknowledged) < 2 * CLIENTS and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert len(acknowledged) >= CLIENTS, "the load did not get going before the crash"
    service.db.dispose()
    stored = next(s.signatures for s in service.summaries())
    assert len(acknowledged) <= stored <= len(attempted)
    kept = stored_dedup_keys(service)
    missing = [i for i in acknowledged if dedup_key_of(service, "crash", i) not in kept]
    assert missing == [], f"acknowledged but lost: {missing}"
    if service.db.engine.dialect.name == "sqlite":
        with service.db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
