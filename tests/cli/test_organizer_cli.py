"""The organizer's first hour with the command: what it refuses, asks and says.

A DEV instance is refused for real petitions; the log gets a name that names the server;
a phone petition says its region; a question without a terminal, a usage mistake, a
damaged contact and a taken port each end in one line that says what happened and what
to do.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from anonsign.cli import log_name, main
from anonsign.config import Settings, load_settings
from anonsign.contacts_export import dump_export, parse_export
from anonsign.instance import load_log_signer
from anonsign.onion import v3_onion_address
from anonsign.service import Service
from tests.cli.test_cli import PASSPHRASE, error_line, run
from tests.live import ANONSIGN, free_port, running


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("PASSPHRASE", "ONION_ADDRESS", "LOG_NAME", "MASTER_KEY_FILE"):
        monkeypatch.delenv(f"ANONSIGN_{name}", raising=False)
    monkeypatch.setenv("ANONSIGN_INSTANCE", str(settings.instance_path))
    monkeypatch.setenv("ANONSIGN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ANONSIGN_ARGON2_TIME_COST", str(settings.argon2.time_cost))
    monkeypatch.setenv("ANONSIGN_ARGON2_MEMORY_KIB", str(settings.argon2.memory_kib))
    return CliRunner()


@pytest.fixture
def keys(tmp_path: Path, runner: CliRunner) -> Path:
    """alice's, bob's and carol's key pairs, as `keygen` makes them."""
    folder = tmp_path / "offline"
    for name in ("alice", "bob", "carol"):
        run(runner, "keygen", name, "--out-dir", str(folder),
            env={"ANONSIGN_PASSPHRASE": PASSPHRASE})  # fmt: skip
    return folder


def create(
    runner: CliRunner, tmp_path: Path, keys: Path, slug: str, *extra: str, ok: bool = True
) -> Result:
    text = tmp_path / f"{slug}.md"
    text.write_text("Please sign.\n", encoding="utf-8")
    return run(
        runner, "petition", "create", slug, "--title", f"Petition {slug}",
        "--text-file", str(text), "--recipient", str(keys / "alice.pub"),
        "--recipient", str(keys / "bob.pub"), *extra, ok=ok,
    )  # fmt: skip


def only_line(result: Result) -> str:
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# --- DEV instances are for trying only --------------------------------------------------------


def test_init_refuses_a_dev_instance_without_asking_a_passphrase(
    runner: CliRunner, service: Service, settings: Settings
) -> None:
    result = run(runner, "init", ok=False, env={"ANONSIGN_PASSPHRASE": PASSPHRASE})
    line = only_line(result)
    assert line.startswith("ERROR: Not initialized: ")
    for says in ("DEV instance", "in clear", "ANONSIGN_INSTANCE", "--dev"):
        assert says in line
    assert not settings.sealed_master_key_file.exists()
    assert "Instance ready" not in result.output


def test_petition_create_refuses_a_dev_instance_unless_told_dev(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    refused = create(runner, tmp_path, keys, "real", "--identifier", "email", ok=False)
    assert "Not created" in error_line(refused)
    assert "DEV instance" in error_line(refused)
    assert service.petitions() == []
    tried = create(runner, tmp_path, keys, "trying", "--identifier", "email", "--dev")
    assert "/p/trying" in tried.stdout
    assert "WARNING: " in tried.stderr
    assert "never for real signatures" in tried.stderr


def test_init_dev_says_loudly_what_a_dev_instance_is(runner: CliRunner, settings: Settings) -> None:
    result = run(runner, "init", "--dev")
    assert settings.dev_master_key_file.exists()
    assert "WARNING: " in result.stderr
    assert "can test who signed" in result.stderr


def test_lock_on_a_dev_instance_stops_the_server_but_keeps_its_keys(
    runner: CliRunner, service: Service, settings: Settings
) -> None:
    key = settings.dev_master_key_file.read_bytes()
    result = run(runner, "lock")
    assert "no unlocked keys to remove" in result.output
    assert settings.dev_master_key_file.read_bytes() == key


# --- the log's name -----------------------------------------------------------------------------


def test_init_names_the_log_after_the_onion_address(runner: CliRunner, settings: Settings) -> None:
    onion = v3_onion_address(secrets.token_bytes(32))
    result = run(runner, "init", "--dev", env={"ANONSIGN_ONION_ADDRESS": onion})
    assert load_log_signer(settings).name == onion
    assert f"The public log is named {onion!r} (from ANONSIGN_ONION_ADDRESS)" in result.output
    assert "auditors see that name" in result.output
    assert "cannot be changed" in result.output


def test_init_takes_the_log_name_given_and_keeps_it_for_good(
    runner: CliRunner, settings: Settings
) -> None:
    run(runner, "init", "--dev", "--log-name", "petitions.example.org")
    assert load_log_signer(settings).name == "petitions.example.org"
    run(runner, "init", "--dev", "--log-name", "petitions.example.org")  # the same: fine
    changed = run(runner, "init", "--dev", "--log-name", "other.example.org", ok=False)
    assert "named 'petitions.example.org' for good" in error_line(changed)
    assert load_log_signer(settings).name == "petitions.example.org"


def test_init_asks_the_log_name_on_a_terminal(
    runner: CliRunner, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_name, "_interactive", lambda: True)
    result = run(runner, "init", "--dev", input="petitions.example.org\n")
    assert "Log name [anonsign]:" in result.output
    assert load_log_signer(settings).name == "petitions.example.org"


def test_init_without_a_terminal_says_that_the_default_name_names_no_server(
    runner: CliRunner, settings: Settings
) -> None:
    result = run(runner, "init", "--dev")
    assert load_log_signer(settings).name == "anonsign"
    assert "'anonsign' names no server" in result.output
    assert "--log-name" in result.output


def test_a_mistyped_onion_address_is_no_log_name(runner: CliRunner, settings: Settings) -> None:
    onion = v3_onion_address(secrets.token_bytes(32))
    typo = onion[:5] + ("a" if onion[5] != "a" else "b") + onion[6:]
    result = run(runner, "init", "--dev", "--log-name", typo, ok=False)
    assert "not a valid v3 onion address" in error_line(result)
    assert not settings.log_key_file.exists()


def test_log_key_prints_the_verifier_key_auditors_need(
    runner: CliRunner, service: Service, settings: Settings
) -> None:
    result = run(runner, "log", "key")
    assert result.output == load_log_signer(settings).verifier_key() + "\n"


# --- phone petitions name their region ----------------------------------------------------------


def test_a_phone_petition_needs_its_region_or_region_none(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    missing = create(runner, tmp_path, keys, "phones", "--identifier", "phone", "--dev", ok=False)
    assert "needs --region" in error_line(missing)
    assert "--region none" in error_line(missing)
    assert service.petitions() == []
    anywhere = create(runner, tmp_path, keys, "phones", "--identifier", "phone", "--region",
                      "none", "--dev")  # fmt: skip
    assert "only with + and their country code" in anywhere.output
    assert service.petition("phones").phone_region is None
    create(runner, tmp_path, keys, "tm", "--identifier", "phone", "--region", "TM", "--dev")
    assert service.petition("tm").phone_region == "TM"


# --- damaged contacts ---------------------------------------------------------------------------


def _damage(export: Path, contact: int, change: object) -> Path:
    """A copy of ``export`` whose contact number ``contact`` (from 1) went through ``change``."""
    parsed = parse_export(export.read_text())
    sealed = list(parsed.sealed)
    sealed[contact - 1] = change(sealed[contact - 1])  # type: ignore[operator]
    damaged = export.with_name(f"damaged-{contact}-{secrets.token_hex(2)}.txt")
    damaged.write_text(dump_export(parsed.slug, parsed.petition_id, sealed))
    return damaged


def _flip(index: int) -> object:
    def flip(sealed: bytes) -> bytes:
        data = bytearray(sealed)
        data[index] ^= 0x01
        return bytes(data)

    return flip


def test_a_damaged_contact_says_damaged_not_try_another_key(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    create(runner, tmp_path, keys, "c", "--identifier", "email", "--dev")
    for i in range(3):
        service.sign("c", f"s{i}@example.org", f"contact {i}")
    export = tmp_path / "c.txt"
    run(runner, "contacts", "export", "c", "--out", str(export))

    def decrypt(path: Path, key: str) -> str:
        result = run(runner, "contacts", "decrypt", str(path), "--key", str(keys / key),
                     ok=False, env={"ANONSIGN_PASSPHRASE": PASSPHRASE})  # fmt: skip
        return error_line(result)

    lost_key = decrypt(_damage(export, 2, _flip(5)), "alice.key")  # alice's key id, flipped
    assert lost_key.startswith("ERROR: Contact 2 of 3 is damaged")
    assert "try another" not in lost_key
    altered = decrypt(_damage(export, 3, _flip(2229 + 1184 - 1)), "bob.key")  # the payload tag
    assert altered.startswith("ERROR: Contact 3 of 3: This contact is damaged")
    cut = decrypt(_damage(export, 1, lambda sealed: sealed[:-7]), "alice.key")
    assert cut.startswith("ERROR: Contact 1 of 3: This sealed contact is damaged")
    other_key = decrypt(export, "carol.key")
    assert "None of the 3 contacts was sealed to the given key" in other_key
    assert "try another organizer key" in other_key


def test_decrypt_never_overwrites_a_file(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    create(runner, tmp_path, keys, "c", "--identifier", "email", "--dev")
    service.sign("c", "s@example.org", "a contact")
    export, out = tmp_path / "c.txt", tmp_path / "contacts.csv"
    run(runner, "contacts", "export", "c", "--out", str(export))
    out.write_text("the only copy of an earlier decryption\n")
    refused = run(runner, "contacts", "decrypt", str(export), "--key", str(keys / "alice.key"),
                  "--out", str(out), ok=False, env={"ANONSIGN_PASSPHRASE": PASSPHRASE})  # fmt: skip
    assert "already exists" in error_line(refused)
    assert out.read_text() == "the only copy of an earlier decryption\n"


# --- questions, usage mistakes, closing twice ---------------------------------------------------


def test_a_question_without_an_answer_names_yes(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    create(runner, tmp_path, keys, "q", "--identifier", "email", "--dev")
    for command in (["petition", "close", "q"], ["emergency-close"]):
        unanswered = run(runner, *command, ok=False, input="")
        assert "Aborted" not in unanswered.output
        assert "--yes" in error_line(unanswered)
        assert "nothing was done" in error_line(unanswered)
    declined = run(runner, "petition", "close", "q", ok=False, input="n\n")
    assert error_line(declined) == "ERROR: 'q' was not closed."
    assert service.petition("q").is_open


def test_closing_a_closed_petition_says_so_and_changes_nothing(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service, settings: Settings
) -> None:
    create(runner, tmp_path, keys, "once", "--identifier", "email", "--dev")
    run(runner, "petition", "close", "once", "--yes")
    master = settings.dev_master_key_file.read_bytes()
    again = run(runner, "petition", "close", "once", "--yes", ok=False)
    assert "already closed" in error_line(again)
    assert "Closed" not in again.output
    assert settings.dev_master_key_file.read_bytes() == master


@pytest.mark.parametrize(
    ("args", "says", "help_of"),
    [
        (["petition", "create", "x"], "Missing option '--title'.", "anonsign petition create"),
        (["petition", "crate"], "No such command 'crate'.", "anonsign petition"),
        (["serve", "--port", "0"], "Invalid value for '--port'", "anonsign serve"),
        (["log", "publish"], "Give one petition name, or --all.", "anonsign log publish"),
        (["keygen"], "Missing argument 'NAME'.", "anonsign keygen"),
    ],
)
def test_a_usage_mistake_is_one_error_line(
    runner: CliRunner, args: list[str], says: str, help_of: str
) -> None:
    result = run(runner, *args, ok=False)
    assert result.exit_code == 2
    line = only_line(result)
    assert line.startswith(f"ERROR: {says}")
    assert line.endswith(f"See `{help_of} --help`.")


def test_anonsign_alone_still_shows_its_help(runner: CliRunner) -> None:
    result = runner.invoke(main, [])
    assert "Usage:" in result.output
    assert "ERROR" not in result.output


def _every_command(
    group: click.Group, path: str = "anonsign"
) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _every_command(command, f"{path} {name}")


def test_every_option_of_every_command_has_a_help_text() -> None:
    missing = [
        f"{path} {param.opts[0]}"
        for path, command in _every_command(main)
        for param in command.params
        if isinstance(param, click.Option) and not param.help
    ]
    assert missing == []


# --- publishing and listing ---------------------------------------------------------------------


def test_publish_due_says_how_many_wait_and_until_when(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    create(runner, tmp_path, keys, "batch", "--identifier", "email", "--dev")
    service.sign("batch", "one@example.org", "")
    service.sign("batch", "two@example.org", "")
    waiting = run(runner, "log", "publish", "--all", "--due")
    line = only_line(waiting)
    assert line.startswith("batch: 2 signatures wait, not published yet: ")
    assert "a batch needs 20 (ANONSIGN_PUBLISH_MIN)" in line
    assert re.search(r"due from \d{4}-\d\d-\d\d \d\d:\d\d UTC", line), line
    assert "`anonsign log publish batch` (without --due)" in line
    assert only_line(run(runner, "log", "publish", "batch")) == (
        "batch: published a checkpoint of size 2."
    )
    assert only_line(run(runner, "log", "publish", "batch")) == (
        "batch: nothing new waits; the public log holds 2 signatures."
    )


def test_petition_list_says_which_signatures_are_published(
    runner: CliRunner, tmp_path: Path, keys: Path, service: Service
) -> None:
    create(runner, tmp_path, keys, "counted", "--identifier", "email", "--dev")
    for i in range(3):
        service.sign("counted", f"s{i}@example.org", "")
    service.publish("counted")
    service.sign("counted", "late@example.org", "")
    (summary,) = service.summaries()
    assert (summary.published, summary.waiting, summary.signatures) == (3, 1, 4)
    listing = run(runner, "petition", "list").output
    assert re.search(r"counted\s*│\s*open\s*│\s*email\s*│\s*3\s*│\s*1\s*│", listing), listing
    assert "waiting: counted, and published with the next batch" in listing


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A real (non-DEV) instance whose unlocked keys go to a fresh folder on /dev/shm."""
    shm = Path("/dev/shm")  # noqa: S108 - memory-backed on purpose
    if not shm.is_dir():
        pytest.skip("no memory-backed /dev/shm on this machine")
    unlocked = shm / f"anonsign-test-{secrets.token_hex(6)}"
    env = {
        "ANONSIGN_INSTANCE": str(tmp_path / "real"),
        "ANONSIGN_MASTER_KEY_FILE": str(unlocked / "master.key"),
        "ANONSIGN_PASSPHRASE": PASSPHRASE,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield load_settings(env)
    shutil.rmtree(unlocked, ignore_errors=True)


def test_petition_list_on_a_locked_instance_says_to_unlock_first(production: Settings) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    assert runner.invoke(main, ["lock"]).exit_code == 0
    result = runner.invoke(main, ["petition", "list"])
    assert result.exit_code == 1
    line = only_line(result)
    assert "locked, so its petitions cannot be listed" in line
    assert line.endswith("run `anonsign unlock` first.")


# --- serving -------------------------------------------------------------------------------------


def test_serve_on_a_taken_port_is_one_error_line(
    service: Service, settings: Settings, tmp_path: Path
) -> None:
    env = {"ANONSIGN_INSTANCE": str(settings.instance_path),
           "ANONSIGN_DATABASE_URL": settings.database_url, "ANONSIGN_WORKERS": "1"}  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [ANONSIGN, "serve", "--port", str(port)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"ERROR: 127.0.0.1:{port} is already in use by another program: stop it, or choose "
        "another port with --port (with make: make run PORT=5001)."
    ]


@pytest.mark.slow
def test_serve_says_where_it_listens_and_how_to_stop_it(
    service: Service, settings: Settings, tmp_path: Path
) -> None:
    env = {"ANONSIGN_INSTANCE": str(settings.instance_path),
           "ANONSIGN_DATABASE_URL": settings.database_url, "ANONSIGN_WORKERS": "1"}  # fmt: skip
    port = free_port()
    log = tmp_path / "serve.log"
    with running(["serve", "--port", str(port)], env, port, log):
        said = log.read_text()
    lines = [line for line in said.splitlines() if line.startswith("Listening on")]
    assert lines == [
        f"Listening on http://127.0.0.1:{port}/, 1 worker. Stop it with Ctrl-C here, or with "
        "`anonsign lock` from another shell."
    ], said
