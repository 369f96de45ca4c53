"""The auditor's tools against a real server: honest log accepted, tampered copies refused."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from anonsign.audit.checkpoint import Checkpoint
from anonsign.cli import main
from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.notes import LogSigner
from anonsign.domain.identifiers import IdentifierKind
from anonsign.instance import load_log_signer
from anonsign.service import Service
from tests.conftest import make_petition
from tests.live import Browser, free_port, running


def audit(*args: str) -> Result:
    return CliRunner().invoke(main, ["audit", *args])


def tampered(bundle: Path, to: Path) -> Path:
    shutil.copytree(bundle, to)
    return to


@pytest.mark.slow
def test_audit_against_a_real_server(
    tmp_path: Path, service: Service, settings: Settings, organizer: OrganizerSecretKey
) -> None:
    make_petition(service, organizer, "audited", IdentifierKind.TEXT)
    port = free_port()
    env = {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": "1",
        "ANONSIGN_PUBLISHER_PERIOD": "0",
    }
    url = f"http://127.0.0.1:{port}/p/audited"
    with running(["serve", "--port", str(port)], env, port, tmp_path / "server.log"):
        browser = Browser(f"http://127.0.0.1:{port}")
        for i in range(6):
            assert browser.sign("audited", f"ID-{i}", "")[0] == 200
        assert browser.sign("audited", "id 0", "")[0] == 200  # a repeat
        service.publish("audited")
        status, key_text = browser.request("/.well-known/anonsign/key")
        assert status == 200
        key = tmp_path / "server.vkey"
        key.write_text(key_text)

        honest = tmp_path / "honest"
        fetched = audit("fetch", url, "--out", str(honest))
        assert fetched.exit_code == 0, fetched.output
        verified = audit("verify", str(honest), "--key", str(key))
        assert verified.exit_code == 0, verified.output
        assert "OK: 6 distinct entries" in verified.output

        # An auditor checks entries taken from the fetched leaves (base64), or in base64url.
        lines = (honest / "leaves").read_text().splitlines()
        urlsafe = base64.urlsafe_b64encode(base64.b64decode(lines[5])).decode().rstrip("=")
        for entry, position in ((lines[3], "entry 4 of 6"), (urlsafe, "entry 6 of 6")):
            included = audit("inclusion", url, "--key", str(key), "--", entry)  # "-" can lead
            assert included.exit_code == 0, included.output
            assert f"counted, as {position}" in included.output
        absent = audit("inclusion", url, base64.b64encode(bytes(32)).decode(), "--key", str(key))
        assert absent.exit_code == 1, absent.output
        assert "Not in the published log" in absent.output

        # One entry replaced by another (a duplicate), one removed.
        replaced = tampered(honest, tmp_path / "replaced")
        (replaced / "leaves").write_text("\n".join([lines[1], *lines[1:]]) + "\n")
        removed = tampered(honest, tmp_path / "removed")
        (removed / "leaves").write_text("\n".join(lines[:-1]) + "\n")
        # The same checkpoint signed by another key.
        text = Checkpoint.parse(load_log_signer(settings).verifier().open(
            (honest / "checkpoint").read_text()
        )).to_text()  # fmt: skip
        impostor = LogSigner.generate(load_log_signer(settings).name)
        other_key = tampered(honest, tmp_path / "other-key")
        (other_key / "checkpoint").write_text(impostor.sign(text))
        for copy, finding in (
            (replaced, "duplicate"),
            (removed, "missing"),
            (other_key, "signature"),
        ):
            result = audit("verify", str(copy), "--key", str(key))
            assert result.exit_code == 1, result.output
            assert finding in result.output.lower(), result.output

        # A previous checkpoint of the same log that the current one does not extend: a fork.
        fork = tmp_path / "fork.checkpoint"
        fork.write_text(
            load_log_signer(settings).sign(Checkpoint("anonsign/audited", 3, bytes(32)).to_text())
        )
        forked = audit("verify", str(honest), "--key", str(key), "--previous", str(fork))
        assert forked.exit_code == 1, forked.output

        # The log grows; the new checkpoint is consistent with the one kept from before.
        for i in range(6, 9):
            assert browser.sign("audited", f"ID-{i}", "")[0] == 200
        service.publish("audited")
        grown = audit("verify", url, "--key", str(key), "--previous", str(honest / "checkpoint"))
        assert grown.exit_code == 0, grown.output
        assert "9 distinct" in grown.output
