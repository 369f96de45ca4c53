"""README.md as a new organizer follows it: the quick start and the workflow, run as written.

The blocks marked ``<!-- readme-test: run -->`` are read from README.md itself and run in
document order, one command at a time, in one bash shell (tests/shell.py), in a fresh
folder that holds nothing but ``.venv``, the environment ``make run`` leaves (here, the
one running this test). No ``anonsign`` is on PATH until the README puts it there, so a
step it forgets ends in "command not found".

The test adds only what is not a step of the README:

- the machine's settings, as the environment: the passphrases (``ANONSIGN_PASSPHRASE``,
  as the CLI reads it), a tmpfs folder for the unlocked keys, this server's onion
  address, a small memory budget for ``calibrate`` and one worker (a shared test host);
- tor: an HTTP proxy (tests/live.py, ``TorStandIn``) delivers what is sent to an onion
  address to the server's unix socket, after the PROXY line tor writes;
- a signer, who signs once the server listens, through the same socket;
- "y" where a command asks for confirmation, as the person at the keyboard answers.

``make run`` and ``make test`` themselves are not run here: the first serves until it
is stopped (tests/cli/test_demo.py runs it), the second is this suite.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click import Command, Group, Option

from anonsign.cli import main
from anonsign.onion import v3_onion_address
from tests.live import CSRF, FORM_TOKEN, Circuit, TorStandIn, circuit_address, wait_for_socket
from tests.shell import Shell, shell_commands

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = "<!-- readme-test: run -->"
SHM = Path("/dev/shm")  # noqa: S108 - memory-backed on purpose
PASSPHRASE = "readme test passphrase, several words"
CONTACT = "Signal: @free-press-reader"
#: The sign form is accepted no sooner than this after its page was rendered (config).
FORM_MIN_SECONDS = 2


def readme_blocks(text: str) -> list[str]:
    """The ``sh`` blocks right after each marker, in document order."""
    pattern = re.compile(re.escape(MARKER) + r"\n```sh\n(.*?)\n```", re.DOTALL)
    return pattern.findall(text)


def readme_commands() -> list[str]:
    return [
        command for block in readme_blocks(README.read_text()) for command in shell_commands(block)
    ]


def test_the_readme_marks_its_quick_start_and_workflow_blocks() -> None:
    commands = readme_commands()
    assert commands[0] == "source .venv/bin/activate    # in the folder of `make run`; then " \
        "`anonsign` works in this shell"  # fmt: skip
    words = [c.split()[:3] for c in commands]
    for needed in (["anonsign", "keygen", "alice"], ["anonsign", "init"], ["anonsign", "serve"],
                   ["anonsign", "petition", "create"], ["anonsign", "audit", "verify"],
                   ["anonsign", "contacts", "decrypt"]):  # fmt: skip
        assert any(w[: len(needed)] == needed for w in words), needed
    assert len(readme_blocks(README.read_text())) == README.read_text().count(MARKER)


def test_the_readme_says_how_to_choose_the_port_of_make_run() -> None:
    assert "make run PORT=" in README.read_text()
    assert re.search(r"^PORT\s+\?=", (ROOT / "Makefile").read_text(), re.MULTILINE)


def _commands(
    group: Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, Group):
            yield from _commands(command, (*path, name))


def test_the_readme_names_every_command_that_reads_anonsign_passphrase() -> None:
    """Every command with --passphrase-file also reads ANONSIGN_PASSPHRASE (cli.passphrase)."""
    readers = {
        " ".join(path)
        for path, command in _commands(main)
        if any(isinstance(p, Option) and "--passphrase-file" in p.opts for p in command.params)
    }
    assert readers >= {"init", "unlock", "keygen", "contacts decrypt", "petition close"}
    row = next(
        line
        for line in README.read_text().splitlines()
        if line.startswith("| `ANONSIGN_PASSPHRASE`")
    )
    assert [name for name in sorted(readers) if f"`{name}`" not in row] == []


def _environment(home: Path, unlocked: Path, onion: str, proxy: str) -> dict[str, str]:
    """This machine's settings; no anonsign on PATH, no virtual environment active."""
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ANONSIGN_") and k.lower() not in proxies and k != "VIRTUAL_ENV"
    }
    env["PATH"] = os.pathsep.join(
        d
        for d in env.get("PATH", "").split(os.pathsep)
        if d and not (Path(d) / "anonsign").exists()
    )
    return env | {
        "HOME": str(home),
        "ANONSIGN_PASSPHRASE": PASSPHRASE,
        "ANONSIGN_MASTER_KEY_FILE": str(unlocked / "master.key"),
        "ANONSIGN_ONION_ADDRESS": onion,
        "ANONSIGN_MEMORY_BUDGET_MIB": "64",
        "ANONSIGN_WORKERS": "1",
        "http_proxy": proxy,
    }


def _sign_once_served(sock: Path, shell: Shell) -> str:
    """A signer on Tor Browser: load the petition, take a moment, sign with a contact."""
    wait_for_socket(sock, shell.process)
    circuit = Circuit(sock, circuit_address(4242))
    status, _headers, page = circuit.request("GET", "/p/free-press")
    assert status == 200, page
    fields = {"csrf_token": CSRF.findall(page)[0], "form_token": FORM_TOKEN.findall(page)[0]}
    time.sleep(FORM_MIN_SECONDS + 0.3)
    form = fields | {"website": "", "identifier": "8 65 123456", "contact": CONTACT}
    status, _headers, thanks = circuit.request(
        "POST", "/p/free-press/sign", form | {"consent": "y"}
    )
    assert status == 200, thanks
    return thanks


@pytest.mark.slow
def test_the_readme_runs_as_written_to_a_verified_count_and_opened_contacts(
    tmp_path: Path,
) -> None:
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the tests do not run in a virtual environment (make test makes one)")
    if not SHM.is_dir():
        pytest.skip("no memory-backed /dev/shm on this machine")
    folder = tmp_path / "anonsign"
    folder.mkdir()
    (folder / ".venv").symlink_to(venv)
    unlocked = SHM / f"anonsign-readme-{secrets.token_hex(6)}"
    onion = v3_onion_address(secrets.token_bytes(32))
    sock = folder / "anonsign.sock"
    transcript: list[str] = []

    with TorStandIn(sock) as tor:
        shell = Shell(folder, _environment(tmp_path, unlocked, onion, tor.url))
        try:
            for command in readme_commands():
                status, output = shell.run(command)
                transcript.append(f"$ {command}\n{output}")
                assert status == 0, "\n".join(transcript)
                if command.startswith("anonsign serve"):
                    thanks = _sign_once_served(sock, shell)
                    assert "Thank you" in thanks
        finally:
            everything = shell.transcript()  # with what the server printed, in the background
            shell.close()
            shutil.rmtree(unlocked, ignore_errors=True)
    print("\n".join(transcript))  # shown on a failure below: the README as a person sees it
    assert "command not found" not in everything

    def said(prefix: str) -> str:
        return next(t for t in transcript if t.startswith(f"$ {prefix}"))

    # A real instance: its keys sealed, none in clear; its log named after the onion.
    instance = folder / "instance"
    assert (instance / "master.key.sealed").exists()
    assert not (instance / "DEV-ONLY-master.key").exists()
    assert "WARNING" not in said("anonsign init")
    assert f"The public log is named {onion!r}" in said("anonsign init")
    assert "Listening on the unix socket" in everything
    assert "free-press: published a checkpoint of size 1." in said("anonsign log publish")
    verified = said("anonsign audit verify")
    assert f"OK: 1 distinct entry in {onion}/free-press" in verified
    assert f"signed by {onion}" in verified
    assert "Closed 'free-press'" in said("anonsign petition close")
    rows = list(csv.reader(io.StringIO((folder / "contacts.csv").read_text())))
    assert rows == [["contact"], [CONTACT]]
