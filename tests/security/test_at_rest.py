"""What a seized disk shows, and what the key adds: SECURITY.md, "what a compromise reveals".

The store is SQLCipher under a key that rests only sealed or in memory, so a powered-off
disk holds no readable database, no dedup key, no entry, no sealed contact and no
petition text: these tests sign through a real server and look at the raw bytes of every
file of the instance folder, WAL included, as a forensic examiner would. With the key (a
memory snapshot), pages are decrypted here independently of SQLCipher, and the physical
place of each entry is compared with the order in which it was signed.

At rest, PostgreSQL holds what its data directory holds (SECURITY.md says so and what
the operator must put under it); these tests are SQLite's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select

from anonsign.cli import main
from anonsign.config import Settings, load_settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.master import unwrap_pepper
from anonsign.domain.signing import prepare_signature
from anonsign.instance import load_server_keys
from anonsign.service import Service
from anonsign.storage.db import Database, StoreKeyMismatch
from anonsign.storage.encrypt import SQLITE_HEADER, StoreState, store_state
from anonsign.storage.models import (
    LogLeafRow,
    PendingContactRow,
    PendingSignatureRow,
    SealedContactRow,
)
from anonsign.storage.repository import Repository
from tests.conftest import make_petition, sign
from tests.forensics import (
    decrypted_pages,
    files_under,
    first_offsets,
    kendall_tau,
    readable_without_key,
)
from tests.live import Browser, free_port, running
from tests.security.test_pepper import PASSPHRASE, production  # noqa: F401 - a fixture

PETITION_TEXT = "Qvorlaxian river petition: distinctive words zq-petition-text-77."
SIGNERS = 48


def _sqlite_only(settings: Settings) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip(
            "at rest, PostgreSQL keeps what its data directory keeps: SECURITY.md names "
            "the encrypted volume the operator must put under it"
        )


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def secrets_of(service: Service, slug: str) -> dict[str, bytes]:
    """Everything of a petition that must not be readable from the disk, by name."""
    found: dict[str, bytes] = {"petition text": PETITION_TEXT.encode()}
    with service.db.reading() as session:
        petition = Repository(session).petition(slug)
        tables = {
            "pending dedup key": PendingSignatureRow.dedup_key,
            "log entry": LogLeafRow.entry,
            "sealed contact": SealedContactRow.sealed,
            "pending sealed contact": PendingContactRow.sealed,
        }
        for name, column in tables.items():
            table = column.class_
            rows = session.scalars(select(column).where(table.petition_id == petition.id))
            for i, value in enumerate(rows):
                value = bytes(value)
                found[f"{name} {i}"] = value
                if len(value) > 200:  # a piece from the middle of a sealed contact, too
                    found[f"{name} {i} (middle)"] = value[len(value) // 2 : len(value) // 2 + 48]
    return found


def plain_export(db: Database, target: Path) -> None:
    """Write a plain (unencrypted) copy of the store, as a careless backup would."""
    conn = db.engine.raw_connection()  # outside any transaction: ATTACH/DETACH need that
    try:
        conn.execute(f"ATTACH DATABASE '{target}' AS plain KEY ''")
        conn.execute("SELECT sqlcipher_export('plain')")
        conn.execute("DETACH DATABASE plain")
    finally:
        conn.close()


def disk_findings(folder: Path, wanted: dict[str, bytes]) -> list[str]:
    """What a forensic scan of ``folder`` finds: readable databases and known secrets."""
    findings = []
    for where, data in files_under(folder):
        if data.startswith(SQLITE_HEADER) or readable_without_key(Path(where)):
            findings.append(f"{where}: a readable SQLite file")
        findings += [f"{where}: {name}" for name, value in wanted.items() if value in data]
    return findings


@pytest.fixture
def sealed_instance(production: Settings) -> Settings:  # noqa: F811 - the fixture
    """A production instance: keys sealed on disk, unlocked to /dev/shm."""
    run("init")
    return production


@pytest.mark.slow
def test_a_seized_disk_shows_nothing_but_sizes(
    sealed_instance: Settings, organizer: OrganizerSecretKey, tmp_path: Path
) -> None:
    settings = sealed_instance
    service = Service.open(settings)
    make_petition(service, organizer, "river", title="Zq river", text=PETITION_TEXT)
    port = free_port()
    env = {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_MASTER_KEY_FILE": str(settings.unlocked_master_key_file),
        "ANONSIGN_WORKERS": "2",
        "ANONSIGN_PUBLISHER_PERIOD": "0",
    }
    with running(["serve", "--port", str(port)], env, port, tmp_path / "server.log"):
        browser = Browser(f"http://127.0.0.1:{port}")
        for i in range(SIGNERS):
            contact = f"zq-contact-{i} reach me at the market" if i % 2 else ""
            assert browser.sign("river", f"zq-signer-{i}@example.org", contact)[0] == 200
        assert service.publish("river") is not None
        for i in range(SIGNERS, SIGNERS + 12):
            contact = f"zq-contact-{i} after dark" if i % 2 else ""
            assert browser.sign("river", f"zq-signer-{i}@example.org", contact)[0] == 200
        wanted = secrets_of(service, "river")
        assert sum(name.startswith("log entry") for name in wanted) == SIGNERS
        assert any(name.startswith("pending sealed contact") for name in wanted)
        # While it runs (the WAL holds the latest commits) ...
        assert disk_findings(settings.instance_path, wanted) == []
    service.close_connections()
    # ... and once it has stopped.
    assert disk_findings(settings.instance_path, wanted) == []
    assert store_state(settings.instance_path / "anonsign.db") is StoreState.ENCRYPTED


def test_the_disk_scan_finds_a_planted_plaintext_copy(
    service: Service, settings: Settings, organizer: OrganizerSecretKey, client: FlaskClient
) -> None:
    _sqlite_only(settings)
    make_petition(service, organizer, "river", text=PETITION_TEXT)
    for i in range(4):
        assert sign(client, "river", f"plant-{i}@example.org", "plant contact").status_code == 200
    wanted = secrets_of(service, "river")
    assert disk_findings(settings.instance_path, wanted) == []
    # A plain copy of the store, as a careless backup would leave it.
    plain = settings.instance_path / "backup.db"
    plain_export(service.db, plain)
    findings = disk_findings(settings.instance_path, wanted)
    assert f"{plain}: a readable SQLite file" in findings
    assert any("pending dedup key" in f for f in findings)
    assert any("petition text" in f for f in findings)


def _arrival_order_by_page(path: Path, store_key: bytes, in_order: list[bytes]) -> list[float]:
    """For every page holding at least 8 of the values: the rank correlation between
    the order they were signed in and their places in the page (every copy counts)."""
    taus = []
    for page in decrypted_pages(path.read_bytes(), store_key):
        places = first_offsets(page, in_order)
        if len(places) >= 8:
            ranks = [i for i, v in enumerate(in_order) if v in places]
            taus.append(kendall_tau(ranks, [places[in_order[i]] for i in ranks]))
    return taus


def test_published_batch_keeps_no_arrival_order_even_with_the_key(
    service: Service, settings: Settings, organizer: OrganizerSecretKey
) -> None:
    """With the key and the pepper (a memory snapshot), a batch's arrival order is gone.

    30 signatures fit the pending table's one page, whose cells lie in arrival order
    (each new cell below the last): the control, read before the batch, must see it.
    After the batch the same entries must lie in no order related to their arrival.
    """
    _sqlite_only(settings)
    petition = make_petition(service, organizer, "order")
    keys = load_server_keys(settings)
    assert keys.store is not None
    with service.db.reading() as session:
        _, wrapped = Repository(session).petition_with_pepper("order")
    assert wrapped is not None
    pepper = unwrap_pepper(keys.master, petition.id, wrapped)
    entries = []
    for i in range(30):
        identifier = f"order-{i}@example.org"
        service.sign("order", identifier, f"order contact {i}")
        entries.append(prepare_signature(petition, pepper, identifier, "").dedup_key)
    with service.db.reading() as session:
        # The first bytes of each sealed contact: the part that lies in its table's page.
        contacts = [bytes(s)[:64] for s in session.scalars(select(PendingContactRow.sealed))]
    path = settings.instance_path / "anonsign.db"
    assert service.db.scrub()  # fold the WAL in, so the main file holds every page

    before = _arrival_order_by_page(path, keys.store, entries)
    assert min(before) < -0.8, f"the test cannot see order where it is (taus {before})"

    assert service.publish("order") is not None
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the batch left WAL frames behind"
    after = _arrival_order_by_page(path, keys.store, entries)
    assert after, "the published entries were not found in the file"
    # 30 unrelated orders: tau's standard deviation is about 0.13.
    assert max(abs(t) for t in after) < 0.5, f"entries still lie in arrival order: {after}"
    image = b"".join(decrypted_pages(path.read_bytes(), keys.store))
    assert all(image.count(c) == 1 for c in contacts), "a pending copy of a contact remains"


def _frames_written(path: Path, action: object) -> int:
    """How many pages one action writes: the WAL frames it adds to an empty WAL."""
    wal = path.with_name(path.name + "-wal")
    action()  # type: ignore[operator]
    return (wal.stat().st_size - 32) // (24 + 4096) if wal.exists() else 0


def test_new_and_repeated_signatures_write_the_same_pages(
    service: Service,
    settings: Settings,
    organizer: OrganizerSecretKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From the same database and the same random row ids, the three kinds write alike.

    Row ids are random, so where a row lands (and whether its page splits) varies from
    one signature to the next; the kind of signature must change nothing of it. Each kind
    is therefore replayed from one snapshot with the same sequence of row ids, and must
    write exactly the same number of pages, signature by signature.
    """
    _sqlite_only(settings)
    make_petition(service, organizer, "pages")
    path = settings.instance_path / "anonsign.db"
    for i in range(8):
        service.sign("pages", f"published-{i}@example.org", "")
    assert service.publish("pages") is not None
    for i in range(8):
        service.sign("pages", f"pending-{i}@example.org", "a contact")
    assert service.db.scrub()
    service.db.dispose()
    snapshot = path.read_bytes()

    import random

    from anonsign.storage import repository

    counts: dict[str, list[int]] = {}
    for kind in ("new", "repeat of pending", "repeat of published"):
        service.db.dispose()
        path.write_bytes(snapshot)
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        draws = random.Random(7)  # noqa: S311 - the same "random" ids for each kind
        monkeypatch.setattr(repository.secrets, "token_bytes", draws.randbytes)
        counts[kind] = []
        for i in range(8):
            identifier = {
                "new": f"new-{i}@example.org",
                "repeat of pending": f"pending-{i}@example.org",
                "repeat of published": f"published-{i}@example.org",
            }[kind]
            for contact in ("", "a contact that is sealed"):
                assert service.db.scrub()  # start from an empty WAL
                counts[kind].append(
                    _frames_written(
                        path, lambda i=identifier, c=contact: service.sign("pages", i, c)
                    )
                )
    assert counts["new"] == counts["repeat of pending"] == counts["repeat of published"], counts
    assert min(counts["new"]) >= 1  # the measurement sees the writes


def test_init_encrypts_an_existing_plain_database(tmp_path: Path) -> None:
    """An instance from before encryption: `init` converts it, keeping every row."""
    instance = tmp_path / "instance"
    settings = load_settings({"ANONSIGN_INSTANCE": str(instance)})
    runner = CliRunner()
    env = {"ANONSIGN_INSTANCE": str(instance)}
    assert runner.invoke(main, ["init", "--dev"], env=env).exit_code == 0
    keys = load_server_keys(settings)
    assert keys.store is not None
    # Make it look as an instance of the previous version did: a plain database and a
    # 32-byte master key alone.
    path = instance / "anonsign.db"
    db = Database(settings.database_url, keys.store)
    plain_export(db, tmp_path / "plain.db")
    db.dispose()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    (tmp_path / "plain.db").rename(path)
    plain = sqlite3.connect(path, isolation_level=None)
    plain.execute("PRAGMA journal_mode=WAL")
    plain.close()
    settings.dev_master_key_file.write_bytes(keys.master)
    assert store_state(path) is StoreState.PLAIN

    refused = runner.invoke(main, ["petition", "list"], env=env)
    assert refused.exit_code == 1
    assert "not encrypted yet; run `anonsign init`" in refused.output

    converted = runner.invoke(main, ["init", "--dev"], env=env)
    assert converted.exit_code == 0, converted.output
    assert "encrypted database" in converted.output
    assert store_state(path) is StoreState.ENCRYPTED
    assert not readable_without_key(path)
    assert [p.name for p in instance.iterdir() if p.name.endswith(".plain")] == []
    new_keys = load_server_keys(settings)
    assert new_keys.master == keys.master
    assert new_keys.store is not None
    listing = runner.invoke(main, ["petition", "list"], env=env)
    assert listing.exit_code == 0, listing.output


def test_the_store_opens_with_its_key_only(service: Service, settings: Settings) -> None:
    _sqlite_only(settings)
    service.close_connections()
    other = load_server_keys(settings).rotated().with_store_key()
    assert other.store is not None
    wrong = Database(settings.database_url, other.store)
    with pytest.raises(StoreKeyMismatch, match="ANONSIGN_INSTANCE"), wrong.engine.connect():
        pass
    wrong.dispose()
    path = settings.instance_path / "anonsign.db"
    assert not readable_without_key(path)
    assert not path.read_bytes().startswith(SQLITE_HEADER)
