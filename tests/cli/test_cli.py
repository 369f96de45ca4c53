"""The ``anonsign`` command as an organizer uses it: clear lines, no tracebacks."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from anonsign.cli import main
from anonsign.config import Settings
from anonsign.contacts_export import dump_export, parse_export
from anonsign.service import Service

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ANONSIGN_INSTANCE", str(settings.instance_path))
    monkeypatch.setenv("ANONSIGN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ANONSIGN_ARGON2_TIME_COST", str(settings.argon2.time_cost))
    monkeypatch.setenv("ANONSIGN_ARGON2_MEMORY_KIB", str(settings.argon2.memory_kib))
    monkeypatch.delenv("ANONSIGN_PASSPHRASE", raising=False)
    return CliRunner()


def run(runner: CliRunner, *args: str, ok: bool = True, **kwargs: object) -> Result:
    result = runner.invoke(main, list(args), **kwargs)  # type: ignore[arg-type]
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def error_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("ERROR: ")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def keys(tmp_path: Path, runner: CliRunner) -> Path:
    """alice's and bob's key pairs, made with the CLI on the 'offline machine'."""
    folder = tmp_path / "offline"
    for name in ("alice", "bob"):
        run(
            runner,
            "keygen",
            name,
            "--out-dir",
            str(folder),
            env={"ANONSIGN_PASSPHRASE": PASSPHRASE},
        )
    return folder


def test_every_command_has_help(runner: CliRunner) -> None:
    for command in (
        [], ["init"], ["unlock"], ["lock"], ["emergency-close"], ["serve"], ["demo"],
        ["keygen"], ["petition"], ["petition", "create"], ["log"], ["log", "publish"],
        ["audit"], ["audit", "fetch"], ["audit", "verify"],
        ["petition", "list"], ["petition", "close"], ["contacts"], ["contacts", "export"],
        ["contacts", "decrypt"],
    ):  # fmt: skip
        result = run(runner, *command, "--help")
        assert "Usage:" in result.output
        assert len(result.output.splitlines()) > 3


def test_init_is_idempotent_and_keeps_secrets(runner: CliRunner, settings: Settings) -> None:
    first = run(runner, "init", "--dev")
    assert "DEV-ONLY server keys" in first.output
    master = settings.dev_master_key_file.read_bytes()
    second = run(runner, "init", "--dev")  # no passphrase asked: it has its master key
    assert "created" not in second.output
    assert settings.dev_master_key_file.read_bytes() == master
    for secret in (settings.dev_master_key_file, settings.session_key_file, settings.log_key_file):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.instance_path.stat().st_mode) == 0o700


def test_keygen_writes_a_private_key_and_a_shareable_public_key(
    keys: Path, runner: CliRunner
) -> None:
    assert stat.S_IMODE((keys / "alice.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((keys / "alice.pub").stat().st_mode) == 0o644
    assert (keys / "alice.key").read_text().startswith("anonsign-secret-key-v1\n")
    again = run(
        runner, "keygen", "alice", "--out-dir", str(keys), ok=False,
        env={"ANONSIGN_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip
    assert "already exists" in error_line(again)


def test_keygen_refuses_a_short_or_missing_passphrase(tmp_path: Path, runner: CliRunner) -> None:
    short = run(runner, "keygen", "carol", "--out-dir", str(tmp_path), ok=False,
                env={"ANONSIGN_PASSPHRASE": "short"})  # fmt: skip
    assert "too short" in error_line(short)
    missing = run(runner, "keygen", "carol", "--out-dir", str(tmp_path), ok=False)
    assert "passphrase" in error_line(missing).lower()
    assert not (tmp_path / "carol.key").exists()


def _create(runner: CliRunner, tmp_path: Path, keys: Path, slug: str, *extra: str) -> Result:
    text = tmp_path / "text.md"
    text.write_text("Please sign.\n", encoding="utf-8")
    return run(
        runner, "petition", "create", slug, "--title", f"Petition {slug}",
        "--text-file", str(text), "--identifier", "email", "--dev", *extra,
    )  # fmt: skip


def test_petition_create_list_close(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    created = _create(runner, tmp_path, keys, "one", "--recipient", str(keys / "alice.pub"),
                      "--recipient", str(keys / "bob.pub"))  # fmt: skip
    assert "/p/one" in created.output
    service.sign("one", "x@example.org", "")
    listing = run(runner, "petition", "list")
    for cell in ("one", "open", "alice, bob"):
        assert cell in listing.output
    closed = run(runner, "petition", "close", "one", input="y\n")
    assert "pepper is destroyed" in closed.output
    assert "closed" in run(runner, "petition", "list").output
    not_found = run(runner, "petition", "close", "nope", "--yes", ok=False)
    assert "No petition" in error_line(not_found)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipient", "missing.pub"], "missing.pub"),
        (["--recipient", "KEYS/alice.key"], "secret key"),
        (["--recipient", "KEYS/alice.pub", "--region", "TM"], "--region"),
    ],
    ids=["missing-key-file", "secret-key-given", "region-for-email"],
)
def test_petition_create_errors_are_one_line(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service, args: list[str], message: str
) -> None:
    text = tmp_path / "text.md"
    text.write_text("Please sign.", encoding="utf-8")
    args = [a.replace("KEYS", str(keys)) for a in args]
    result = run(runner, "petition", "create", "two", "--title", "T", "--text-file", str(text),
                 "--identifier", "email", "--dev", *args, ok=False)  # fmt: skip
    assert message in error_line(result)


def test_bad_slug_is_one_line(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    text = tmp_path / "text.md"
    text.write_text("Please sign.", encoding="utf-8")
    result = run(runner, "petition", "create", "Bad Slug!", "--title", "T", "--text-file",
                 str(text), "--identifier", "email", "--recipient", str(keys / "alice.pub"),
                 "--dev", ok=False)  # fmt: skip
    assert "lowercase" in error_line(result)


def _decrypt(runner: CliRunner, export: Path, key: Path, *extra: str, ok: bool = True) -> Result:
    return run(runner, "contacts", "decrypt", str(export), "--key", str(key), *extra, ok=ok,
               env={"ANONSIGN_PASSPHRASE": PASSPHRASE})  # fmt: skip


def test_contacts_round_trip_and_clean_failures(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    _create(runner, tmp_path, keys, "a", "--recipient", str(keys / "alice.pub"))
    _create(runner, tmp_path, keys, "b", "--recipient", str(keys / "alice.pub"))
    contacts = ["Signal @one", 'Телеграм: @два, "quoted"', "line one\nline two"]
    for i, contact in enumerate(contacts):
        service.sign("a", f"s{i}@example.org", contact)
    service.sign("a", "nocontact@example.org", "")
    service.sign("b", "other@example.org", "contact of petition b")

    export_a, export_b = tmp_path / "a.txt", tmp_path / "b.txt"
    run(runner, "contacts", "export", "a", "--out", str(export_a))
    run(runner, "contacts", "export", "b", "--out", str(export_b))
    assert stat.S_IMODE(export_a.stat().st_mode) == 0o600
    for contact in contacts:
        assert contact.encode() not in export_a.read_bytes()

    opened = _decrypt(runner, export_a, keys / "alice.key")
    rows = list(csv.reader(io.StringIO(opened.stdout)))
    assert rows[0] == ["contact"]
    assert sorted(r[0] for r in rows[1:]) == sorted(contacts)

    out = tmp_path / "contacts.csv"
    _decrypt(runner, export_a, keys / "alice.key", "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(r[0] for r in list(csv.reader(io.StringIO(out.read_text())))[1:]) == sorted(
        contacts
    )

    wrong_passphrase = run(runner, "contacts", "decrypt", str(export_a), "--key",
                           str(keys / "alice.key"), ok=False,
                           env={"ANONSIGN_PASSPHRASE": "not the passphrase"})  # fmt: skip
    assert "Wrong passphrase" in error_line(wrong_passphrase)

    wrong_key = _decrypt(runner, export_a, keys / "bob.key", ok=False)
    assert "None of the 3 contacts was sealed to the given key" in error_line(wrong_key)

    # A contact of petition b carried into petition a's export does not open there.
    a, b = parse_export(export_a.read_text()), parse_export(export_b.read_text())
    moved = tmp_path / "moved.txt"
    moved.write_text(dump_export(a.slug, a.petition_id, [*a.sealed, *b.sealed]))
    refused = _decrypt(runner, moved, keys / "alice.key", ok=False)
    assert "does not open" in error_line(refused)

    foreign = tmp_path / "foreign.txt"
    foreign.write_bytes(os.urandom(200))
    assert "not an anonsign" in error_line(_decrypt(runner, foreign, keys / "alice.key", ok=False))
    truncated = tmp_path / "truncated.txt"
    truncated.write_text("\n".join(export_a.read_text().splitlines()[:-1]) + "\n")
    assert "truncated" in error_line(_decrypt(runner, truncated, keys / "alice.key", ok=False))


def test_commands_before_init_say_how_to_fix(runner: CliRunner) -> None:
    result = run(runner, "petition", "list", ok=False)
    assert "anonsign init" in error_line(result)


def test_a_database_that_cannot_be_reached_is_one_line(runner: CliRunner, service: Service) -> None:
    # Port 1: nothing listens there, so the driver's own refusal reaches the organizer.
    down = "postgresql://postgres:secret-password@127.0.0.1:1/postgres"
    result = run(runner, "petition", "list", ok=False, env={"ANONSIGN_DATABASE_URL": down})
    line = error_line(result)
    assert line.startswith("ERROR: Cannot use the database (ANONSIGN_DATABASE_URL): ")
    assert "port 1" in line
    assert "secret-password" not in result.output


def test_a_lost_race_in_the_database_is_one_line_and_other_errors_stay_whole() -> None:
    from sqlalchemy.exc import IntegrityError

    from anonsign.cli.main import database_error_line

    orig = Exception('duplicate key value violates unique constraint "checkpoints_pkey"\nDETAIL: x')
    line = database_error_line(IntegrityError("INSERT INTO checkpoints", {}, orig))
    assert line is not None
    assert "\n" not in line
    assert line.startswith("ERROR: Another process changed the same rows")
    assert "checkpoints_pkey" in line
    assert "Run it again." in line
    assert database_error_line(ValueError("a bug")) is None
