"""``anonsign audit fetch`` and ``anonsign audit verify`` as an auditor uses them.

The server is tests/logserver.py on 127.0.0.1, speaking the anonsign endpoint contract;
the auditor's verifier key comes from a file, as it would from the organizers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from anonsign.cli import main
from anonsign.crypto.notes import LogSigner
from tests.logserver import HonestLog, LogServer, make_log


@pytest.fixture(scope="module")
def signer() -> LogSigner:
    return LogSigner.generate("petitions.example")


@pytest.fixture
def log(signer: LogSigner) -> HonestLog:
    return make_log(50, signer, slug="free-the-press")


@pytest.fixture
def server(log: HonestLog) -> Iterator[LogServer]:
    with LogServer(log).running() as running:
        yield running


@pytest.fixture
def key_file(tmp_path: Path, signer: LogSigner) -> Path:
    path = tmp_path / "server.vkey"
    path.write_text(signer.verifier_key() + "\n")
    return path


def run(*args: str | Path, ok: bool = True) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def error_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("ERROR: ")]
    assert len(lines) == 1, result.output
    return lines[0]


# --- fetch --------------------------------------------------------------------------------


def test_fetch_writes_a_bundle_and_says_so_in_one_line(
    server: LogServer, log: HonestLog, tmp_path: Path
) -> None:
    out = tmp_path / "audit-1"
    result = run("audit", "fetch", server.url, "--out", out)
    assert result.output.splitlines() == [
        f"Fetched 50 entries of petitions.example/free-the-press into {out}; check them with "
        f"`anonsign audit verify {out} --key <the server's verifier key file>`."
    ]
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "checkpoint", "key", "leaves"]
    assert (out / "checkpoint").read_text() == log.note()


def test_fetch_refuses_a_folder_in_use(server: LogServer, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    result = run("audit", "fetch", server.url, "--out", tmp_path / "used", ok=False)
    assert error_line(result) == (
        f"ERROR: {tmp_path / 'used'} already exists and is not an empty folder; choose a new "
        "folder for the bundle."
    )


def test_fetch_of_something_that_is_not_a_petition_address(tmp_path: Path) -> None:
    result = run("audit", "fetch", "xyz.onion/demo", "--out", tmp_path / "b", ok=False)
    assert "expected http(s)://<server>/p/<petition>" in error_line(result)


def test_fetch_from_a_broken_server_is_one_error_line(server: LogServer, tmp_path: Path) -> None:
    server.faults["status"] = {f"/p/{server.log.slug}/tile/entries/000.p/50": 503}
    result = run("audit", "fetch", server.url, "--out", tmp_path / "b", ok=False)
    assert "tile/entries/000.p/50 answered HTTP 503" in error_line(result)
    assert not (tmp_path / "b").exists()


# --- verify a folder ----------------------------------------------------------------------


def test_verify_a_fetched_folder(
    server: LogServer, log: HonestLog, key_file: Path, tmp_path: Path
) -> None:
    run("audit", "fetch", server.url, "--out", tmp_path / "b")
    result = run("audit", "verify", tmp_path / "b", "--key", key_file)
    assert result.output.startswith(
        "OK: 50 distinct entries in petitions.example/free-the-press, root "
    )
    assert result.output.endswith(", signed by petitions.example.\n")


def test_the_root_reads_the_same_in_the_report_the_checkpoint_and_the_json(
    server: LogServer, key_file: Path, tmp_path: Path
) -> None:
    run("audit", "fetch", server.url, "--out", tmp_path / "b")
    in_checkpoint = (tmp_path / "b" / "checkpoint").read_text().splitlines()[2]
    said = run("audit", "verify", tmp_path / "b", "--key", key_file).output
    data = json.loads(run("audit", "verify", tmp_path / "b", "--key", key_file, "--json").output)
    assert f", root {in_checkpoint}, " in said
    assert data["root"] == in_checkpoint


def test_a_petition_the_server_does_not_have_is_one_sentence(
    server: LogServer, tmp_path: Path
) -> None:
    result = run("audit", "fetch", server.url + "-missing", "--out", tmp_path / "b", ok=False)
    line = error_line(result)
    assert "There is no petition here" in line
    assert ".." not in line
    assert line.endswith(".")


def test_verify_json_output(
    server: LogServer, log: HonestLog, key_file: Path, tmp_path: Path
) -> None:
    run("audit", "fetch", server.url, "--out", tmp_path / "b")
    data = json.loads(run("audit", "verify", tmp_path / "b", "--key", key_file, "--json").output)
    assert data["ok"] is True
    assert (data["size"], data["entries"], data["distinct"]) == (50, 50, 50)
    assert data["findings"] == []
    assert data["key"] == log.signer.verifier_key()


def test_verify_with_another_key_fails_with_findings(server: LogServer, tmp_path: Path) -> None:
    run("audit", "fetch", server.url, "--out", tmp_path / "b")
    other = tmp_path / "other.vkey"
    other.write_text(LogSigner.generate("petitions.example").verifier_key())
    result = run("audit", "verify", tmp_path / "b", "--key", other, ok=False)
    assert [line.split(":")[0] for line in result.output.splitlines()] == [
        "FAIL wrong-key",
        "FAIL bad-signature",
    ]
    data = json.loads(
        run("audit", "verify", tmp_path / "b", "--key", other, "--json", ok=False).output
    )
    assert data["ok"] is False
    assert [f["kind"] for f in data["findings"]] == ["wrong-key", "bad-signature"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "ERROR: Cannot read the verifier key file"),
        ("not a key", "ERROR: The verifier key 'not a key' has 1 part(s)"),
        ("\udcff", "is not UTF-8 text, expected a verifier key file"),
    ],
)
def test_verify_with_an_unusable_key_file_is_an_error(
    server: LogServer, tmp_path: Path, content: str | None, message: str
) -> None:
    run("audit", "fetch", server.url, "--out", tmp_path / "b")
    path = tmp_path / "k.vkey"
    if content is not None:
        path.write_bytes(content.encode("utf-8", "surrogateescape"))
    result = run("audit", "verify", tmp_path / "b", "--key", path, ok=False)
    assert message in error_line(result)


def test_verify_a_folder_that_is_not_a_bundle(key_file: Path, tmp_path: Path) -> None:
    result = run("audit", "verify", tmp_path / "nothing", "--key", key_file, ok=False)
    assert "is not a folder, expected a log bundle folder" in error_line(result)


def test_previous_checkpoint_from_an_earlier_audit(
    server: LogServer, log: HonestLog, key_file: Path, tmp_path: Path
) -> None:
    run("audit", "fetch", server.url, "--out", tmp_path / "monday")
    log.grow(25)
    run("audit", "fetch", server.url, "--out", tmp_path / "friday")
    previous = tmp_path / "monday" / "checkpoint"
    result = run("audit", "verify", tmp_path / "friday", "--key", key_file, "--previous", previous)
    assert "OK: 75 distinct entries" in result.output
    assert result.output.endswith(", consistent with the previous checkpoint of size 50.\n")
    # ... and the other way round, the log shrank.
    result = run(
        "audit",
        "verify",
        tmp_path / "monday",
        "--key",
        key_file,
        "--previous",
        tmp_path / "friday" / "checkpoint",
        ok=False,
    )
    assert result.output.startswith("FAIL shrink: The log shrank from 75 to 50 entries")


# --- verify an address --------------------------------------------------------------------


def test_verify_an_address_directly(server: LogServer, key_file: Path, tmp_path: Path) -> None:
    result = run("audit", "verify", server.url, "--key", key_file)
    assert result.output.startswith("OK: 50 distinct entries")


def test_verify_an_address_with_previous_asks_for_a_consistency_proof(
    server: LogServer, log: HonestLog, key_file: Path, tmp_path: Path
) -> None:
    previous = tmp_path / "previous"
    previous.write_text(log.note(20))
    result = run("audit", "verify", server.url, "--key", key_file, "--previous", previous)
    assert "consistent with the previous checkpoint of size 20" in result.output
    assert "/p/free-the-press/log/consistency?from=20&to=50" in server.requests


def test_a_forged_consistency_proof_fails_the_audit(
    server: LogServer, log: HonestLog, key_file: Path, tmp_path: Path
) -> None:
    server.faults["consistency"] = [bytes(32)] * 4
    previous = tmp_path / "previous"
    previous.write_text(log.note(20))
    result = run("audit", "verify", server.url, "--key", key_file, "--previous", previous, ok=False)
    assert result.output.startswith("FAIL bad-proof: The server's consistency proof from size 20")


def test_a_server_that_rewrote_an_entry_fails_the_audit(
    server: LogServer, log: HonestLog, key_file: Path
) -> None:
    server.faults["leaves"] = [*log.entries[:30], bytes(32), *log.entries[31:]]
    result = run("audit", "verify", server.url, "--key", key_file, ok=False)
    assert result.output.startswith("FAIL root-mismatch: The log content differs from what was")


def test_a_server_that_forked_fails_the_audit(
    server: LogServer, log: HonestLog, key_file: Path, tmp_path: Path
) -> None:
    """The auditor kept a checkpoint of size 50; the server now shows another history."""
    previous = tmp_path / "previous"
    previous.write_text(log.note())
    server.log = make_log(50, log.signer, slug="free-the-press")
    result = run("audit", "verify", server.url, "--key", key_file, "--previous", previous, ok=False)
    assert result.output.startswith("FAIL fork: Fork: two checkpoints of size 50")


def test_a_bad_key_file_is_refused_before_fetching(server: LogServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.vkey"
    bad.write_text("petitions.example+00000000+AAAA")
    run("audit", "verify", server.url, "--key", bad, ok=False)
    assert server.requests == []


def test_an_unreachable_address_is_one_error_line(key_file: Path) -> None:
    result = run("audit", "verify", "http://127.0.0.1:9/p/demo", "--key", key_file, ok=False)
    assert error_line(result).startswith("ERROR: Cannot reach http://127.0.0.1:9/")


# --- the auditor's machine needs no server code -------------------------------------------


def test_a_full_audit_in_a_fresh_interpreter_loads_no_server_code(
    server: LogServer, key_file: Path, tmp_path: Path
) -> None:
    code = (
        "import json, sys\n"
        "from anonsign.cli import main\n"
        "for args in (['fetch', sys.argv[1], '--out', sys.argv[3]],\n"
        "             ['verify', sys.argv[3], '--key', sys.argv[2]],\n"
        "             ['verify', sys.argv[1], '--key', sys.argv[2], '--json']):\n"
        "    try:\n"
        "        main(['audit', *args])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "                {'flask', 'sqlalchemy', 'alembic', 'werkzeug'})\n"
        "print(json.dumps(loaded), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, server.url, str(key_file), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []
    assert "OK: 50 distinct entries" in result.stdout
