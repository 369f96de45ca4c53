"""`anonsign witness`: a witness made, configured and served by its command line, as
another organisation would run it (gunicorn, a port of its own), cosigning a real log."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from anonsign.cli import main
from anonsign.crypto.cosign import CosignatureVerifier
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.service import Service
from tests.conftest import add_pending, make_petition
from tests.live import free_port, running


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.slow
def test_a_witness_run_from_its_commands_cosigns_a_real_log(
    service: Service, organizer: OrganizerSecretKey, tmp_path: Path
) -> None:
    folder = tmp_path / "witness"
    code, out = cli("witness", "init", str(folder), "--name", "ngo.example/w1")
    assert code == 0, out
    key = out.strip().splitlines()[-1]
    CosignatureVerifier.from_verifier_key(key)
    assert stat.S_IMODE((folder / "witness.key").stat().st_mode) == 0o600
    code, out = cli("witness", "init", str(folder), "--name", "ngo.example/w1")
    assert code == 1
    assert "this folder is a witness" in out

    petition = make_petition(service, organizer, "cli-witnessed", IdentifierKind.TEXT)
    log_key = tmp_path / "server.vkey"
    log_key.write_text(service.verifier_key() + "\n")
    code, out = cli(
        "witness", "add-log", str(folder), "--origin", petition.log_origin, "--key", str(log_key)
    )
    assert code == 0, out
    assert f"Witnessing {petition.log_origin}" in out

    port = free_port()
    with running(["witness", "serve", str(folder), "--port", str(port)], {}, port,
                 tmp_path / "witness.log"):  # fmt: skip
        service.settings.witnesses_file.write_text(f"http://127.0.0.1:{port} {key}\n")
        add_pending(service, petition.id, [os.urandom(32) for _ in range(12)])
        service.publish("cli-witnessed")
        outcome = service.witness("cli-witnessed")[0]
        assert (outcome.witness, outcome.problem) == ("ngo.example/w1", None)
    code, out = cli("witness", "status", str(folder))
    assert code == 0, out
    assert f"{petition.log_origin}: cosigned up to size 12" in out


def test_a_folder_without_a_key_is_one_error_line(tmp_path: Path) -> None:
    code, out = cli("witness", "status", str(tmp_path))
    assert code == 1
    assert out.startswith("ERROR: ")
    assert "anonsign witness init" in out
    assert out.count("\n") == 1


@pytest.mark.parametrize(
    "line",
    [
        "ftp://w.example KEY",
        "http://w.example",
        "http://w.example ngo.example/w1+00000000+AAAA",
    ],
)
def test_a_bad_witnesses_file_is_refused_with_its_line(
    service: Service, organizer: OrganizerSecretKey, line: str
) -> None:
    from anonsign.witness.client import WitnessConfigError

    make_petition(service, organizer, "p", IdentifierKind.TEXT)
    service.settings.witnesses_file.write_text(f"# the witnesses\n\n{line}\n")
    with pytest.raises(WitnessConfigError, match="witnesses, line 3"):
        service.witness("p")
