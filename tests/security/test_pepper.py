"""The pepper's lifecycle: sealed master key, unlock to memory only, destruction at close."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from anonsign.cli import main
from anonsign.config import Settings
from anonsign.crypto.master import unwrap_pepper
from anonsign.domain.petitions import Petition
from anonsign.errors import PetitionClosed
from anonsign.instance import InstanceLocked, load_server_keys
from anonsign.service import Service
from anonsign.storage.repository import Repository
from tests.conftest import sign
from tests.security.test_canary import database_dump, files_under

PASSPHRASE = "unlock passphrase for tests"
SHM = Path("/dev/shm")  # noqa: S108 - memory-backed on purpose


def pepper_of(service: Service, slug: str) -> tuple[bytes, bytes]:
    with service.db.reading() as session:
        petition, wrapped = Repository(session).petition_with_pepper(slug)
    assert wrapped is not None
    return wrapped, unwrap_pepper(load_server_keys(service.settings).master, petition.id, wrapped)


def test_close_destroys_the_pepper_everywhere(
    client: FlaskClient, service: Service, settings: Settings, petition: Petition
) -> None:
    for i in range(5):
        assert sign(client, petition.slug, f"p{i}@example.org", "a contact").status_code == 200
    wrapped, pepper = pepper_of(service, petition.slug)
    # The scan below can fail: before the close, the decrypted database holds the pepper.
    assert wrapped in database_dump(service.db.engine)

    service.close(petition.slug)
    service.db.dispose()
    places = [*files_under(settings.instance_path), ("database", database_dump(service.db.engine))]
    for where, data in places:
        assert wrapped not in data, where
        assert pepper not in data, where
    with pytest.raises(PetitionClosed):
        service.sign(petition.slug, "late@example.org", "")
    answer = client.post(f"/p/{petition.slug}/sign", data={"identifier": "late@example.org"})
    assert answer.status_code in {400, 410}
    page = client.get(f"/p/{petition.slug}").get_data(as_text=True)
    assert 'name="identifier"' not in page


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A non-dev instance whose unlocked key goes to a fresh folder on /dev/shm."""
    if not SHM.is_dir():
        pytest.skip("no memory-backed /dev/shm on this machine")
    unlocked = SHM / f"anonsign-test-{secrets.token_hex(6)}"
    monkeypatch.setenv("ANONSIGN_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("ANONSIGN_MASTER_KEY_FILE", str(unlocked / "master.key"))
    monkeypatch.setenv("ANONSIGN_PASSPHRASE", PASSPHRASE)
    from anonsign.config import load_settings

    yield load_settings()
    shutil.rmtree(unlocked, ignore_errors=True)


def run(*args: str, ok: bool = True, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, list(args), env=env)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def test_production_init_keeps_the_master_key_only_sealed_on_disk(production: Settings) -> None:
    output = run("init")
    assert "sealed server keys" in output
    keys = load_server_keys(production)
    assert production.sealed_master_key_file.exists()
    assert not production.dev_master_key_file.exists()
    for where, data in files_under(production.instance_path):
        assert keys.master not in data, where
        assert keys.store is not None
        assert keys.store not in data, where
    assert production.unlocked_master_key_file.read_bytes() == keys.to_bytes()


def test_serving_needs_an_unlock_after_a_reboot(production: Settings, tmp_path: Path) -> None:
    run("init")
    master = load_server_keys(production)
    run("lock")  # what a reboot does to tmpfs
    assert not production.unlocked_master_key_file.exists()
    with pytest.raises(InstanceLocked, match="anonsign unlock"):
        Service.open(production)
    listing = run("petition", "list", ok=False)
    assert "ERROR: The instance is locked" in listing
    assert "anonsign unlock" in listing

    wrong = run("unlock", ok=False, env={"ANONSIGN_PASSPHRASE": "not the passphrase"})
    assert "Wrong unlock passphrase" in wrong
    assert "Unlocked" in run("unlock")
    assert load_server_keys(production) == master
    run("petition", "list")


def test_unlock_refuses_persistent_storage(production: Settings, tmp_path: Path) -> None:
    run("init")
    on_disk = tmp_path / "disk" / "master.key"
    if Path("/proc/mounts").exists() and "tmpfs" in _fs_of(tmp_path):
        pytest.skip("the test's temporary folder is itself on tmpfs")
    refused = run("unlock", ok=False, env={"ANONSIGN_MASTER_KEY_FILE": str(on_disk)})
    assert "not memory-backed" in refused
    assert not on_disk.exists()


def _fs_of(path: Path) -> str:
    from anonsign.instance import filesystem_type

    return filesystem_type(path)


def test_emergency_close_closes_everything_and_locks(production: Settings, tmp_path: Path) -> None:
    run("init")
    keys = tmp_path / "keys"
    run("keygen", "alice", "--out-dir", str(keys), env={"ANONSIGN_PASSPHRASE": PASSPHRASE})
    text = tmp_path / "t.md"
    text.write_text("Sign.")
    for slug in ("one", "two"):
        run("petition", "create", slug, "--title", slug, "--text-file", str(text),
            "--identifier", "email", "--recipient", str(keys / "alice.pub"))  # fmt: skip
    service = Service.open(production)
    service.sign("one", "x@example.org", "")
    service.close_connections()
    output = run("emergency-close", "--yes")
    assert "Closed 2 petitions" in output
    assert not production.unlocked_master_key_file.exists()
    run("unlock")
    service = Service.open(production)
    try:
        assert {p.slug for p in service.petitions(open_only=True)} == set()
        assert service.checkpoint("one").size == 1  # the final checkpoint holds the signature
    finally:
        service.close_connections()
