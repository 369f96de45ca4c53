"""Closing a petition replaces the master key, safely (SECURITY.md, "close reaches every
process"): the old key opens nothing that is still stored, processes that held it find
the new one, and no crash or failure can leave open petitions with unopenable peppers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from anonsign.cli import main
from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.master import unwrap_pepper
from anonsign.errors import MasterKeyMismatch, WrongPassphrase
from anonsign.instance import load_server_keys, next_path, rotation_pending
from anonsign.service import Service
from anonsign.storage.repository import Repository
from tests.conftest import make_petition
from tests.security.test_pepper import PASSPHRASE, production  # noqa: F401 - a fixture


def stored_peppers(service: Service) -> dict[str, bytes]:
    with service.db.reading() as session:
        repo = Repository(session)
        found = {}
        for petition in repo.petitions():
            _, wrapped = repo.petition_with_pepper(petition.slug)
            if wrapped is not None:
                found[petition.id] = wrapped
        return found


def opens(master: bytes, petition_id: str, wrapped: bytes) -> bool:
    try:
        unwrap_pepper(master, petition_id, wrapped)
    except MasterKeyMismatch:
        return False
    return True


def test_close_replaces_the_master_key_and_rewraps_the_open_petitions(
    service: Service, settings: Settings, organizer: OrganizerSecretKey
) -> None:
    for slug in ("one", "two", "three"):
        make_petition(service, organizer, slug)
        service.sign(slug, "before@example.org", "")
    old = load_server_keys(settings)
    service.close("one")
    new = load_server_keys(settings)
    assert new.master != old.master
    assert new.store == old.store  # the store is not rewritten
    assert not rotation_pending(settings)
    peppers = stored_peppers(service)
    assert len(peppers) == 2
    for petition_id, wrapped in peppers.items():
        assert opens(new.master, petition_id, wrapped)
        assert not opens(old.master, petition_id, wrapped)
    service.sign("two", "after@example.org", "")
    assert next(s.signatures for s in service.summaries() if s.petition.slug == "two") == 2


def test_a_process_that_held_the_old_key_finds_the_new_one(
    service: Service, settings: Settings, organizer: OrganizerSecretKey
) -> None:
    make_petition(service, organizer, "one")
    make_petition(service, organizer, "two")
    worker = Service.open(settings)  # a worker that started before the close
    try:
        worker.sign("two", "early@example.org", "")
        service.close("one")
        worker.sign("two", "late@example.org", "")  # re-reads the key file once
    finally:
        worker.close_connections()


def test_a_crash_between_commit_and_swap_is_settled_by_the_next_close(
    service: Service,
    settings: Settings,
    organizer: OrganizerSecretKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for slug in ("one", "two", "three"):
        make_petition(service, organizer, slug)
    import anonsign.service

    def crash(_settings: Settings) -> None:
        raise SystemExit("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(anonsign.service, "finish_rotation", crash)
        with pytest.raises(SystemExit):
            service.close("one")
    # The database uses the staged keys; the current file still holds the old ones.
    assert rotation_pending(settings)
    fresh = Service.open(settings)
    try:
        fresh.sign("two", "meanwhile@example.org", "")  # finds the staged key
        fresh.close("two")  # settles the interrupted rotation first, then rotates again
    finally:
        fresh.close_connections()
    assert not rotation_pending(settings)
    keys = load_server_keys(settings)
    ((petition_id, wrapped),) = stored_peppers(service).items()
    assert opens(keys.master, petition_id, wrapped)
    service.sign("three", "later@example.org", "")


def test_a_failed_close_leaves_the_keys_and_the_petition_as_they_were(
    service: Service,
    settings: Settings,
    organizer: OrganizerSecretKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_petition(service, organizer, "one")
    make_petition(service, organizer, "two")
    old = load_server_keys(settings)
    import anonsign.storage.repository as repository

    def fail(self: Repository, rewrap: object) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(repository.Repository, "rewrap_peppers", fail)
    with pytest.raises(RuntimeError):
        service.close("one")
    assert not rotation_pending(settings)
    assert not next_path(settings.dev_master_key_file).exists()
    assert load_server_keys(settings) == old
    assert service.petition("one").is_open
    service.sign("two", "still@example.org", "")


def test_production_close_needs_the_unlock_passphrase(
    production: Settings,  # noqa: F811 - the fixture
    organizer: OrganizerSecretKey,
) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    service = Service.open(production)
    try:
        make_petition(service, organizer, "one")
        make_petition(service, organizer, "two")
        with pytest.raises(WrongPassphrase):
            service.close("one", passphrase="not the unlock passphrase")
        assert service.petition("one").is_open
        assert not rotation_pending(production)
    finally:
        service.close_connections()
    old = load_server_keys(production)
    result = runner.invoke(main, ["petition", "close", "one", "--yes"])
    assert result.exit_code == 0, result.output
    assert "master key replaced" in result.output
    assert "No server is running" in result.output
    # The new keys are sealed: a reboot (lock) and unlock bring back the new ones.
    assert runner.invoke(main, ["lock"]).exit_code == 0
    assert runner.invoke(main, ["unlock"]).exit_code == 0
    keys = load_server_keys(production)
    assert keys.master != old.master
    service = Service.open(production)
    try:
        service.sign("two", "after@example.org", "")
    finally:
        service.close_connections()
