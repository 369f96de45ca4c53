"""The served log read by code this project did not write: Go's checksum-database
packages (golang.org/x/mod/sumdb/note and sumdb/tlog, from Debian's golang-go and
golang-golang-x-mod-dev), built offline here into ``tests/interop/tilecheck``.

A real server (``anonsign serve``) serves a petition log of 70,000 entries, published in
two batches (65,536 then 4,464: a full level-1 tile, then the tlog-tiles spec's own
example size, with partial tiles on three levels). The Go program verifies the
checkpoint note with the server's verifier key, computes the root from the hash tiles
alone and through tlog's authenticating tile reader, hashes every entry of every entry
bundle to its place in the level-0 tiles, and compares every tile of the tree with the
one tlog computes from the entries (tilecheck's doc comment says each step).
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from anonsign.audit.checkpoint import Checkpoint
from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.notes import parse_note
from anonsign.domain.identifiers import IdentifierKind
from anonsign.service import Service
from tests.conftest import add_pending, make_petition
from tests.live import free_port, running

pytestmark = pytest.mark.slow

GOPATH = Path("/usr/share/gocode")
TLOG = GOPATH / "src" / "golang.org" / "x" / "mod" / "sumdb" / "tlog"
SOURCE = Path(__file__).parent / "tilecheck" / "main.go"


@pytest.fixture(scope="module")
def tilecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not TLOG.is_dir():
        reason = (
            "Go or golang.org/x/mod/sumdb/tlog is not installed "
            "(apt-get install golang-go golang-golang-x-mod-dev)"
        )
        print(f"tile interop test skipped: {reason}")
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("tilecheck")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out / "cache"),
        "GOFLAGS": "",
    }
    built = subprocess.run(
        [go, "build", "-o", str(out / "tilecheck"), str(SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return out / "tilecheck"


def test_go_tlog_reads_the_served_tiles_and_gets_the_checkpoint_root(
    tilecheck: Path,
    tmp_path: Path,
    service: Service,
    settings: Settings,
    organizer: OrganizerSecretKey,
) -> None:
    petition = make_petition(service, organizer, "tiled", IdentifierKind.TEXT)
    draws = random.Random(9)  # noqa: S311 - test data
    for batch in (65_536, 4_464):
        add_pending(service, petition.id, [draws.randbytes(32) for _ in range(batch)])
        service.publish("tiled")
    note = service.checkpoint("tiled").note
    checkpoint = Checkpoint.parse(parse_note(note).text)
    assert checkpoint.size == 70_000

    port = free_port()
    env = {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": "1",
        "ANONSIGN_PUBLISHER_PERIOD": "0",
    }
    with running(["serve", "--port", str(port)], env, port, tmp_path / "server.log"):
        checked = subprocess.run(
            [str(tilecheck), f"http://127.0.0.1:{port}/p/tiled", service.verifier_key()],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert checked.returncode == 0, checked.stderr
    print(checked.stdout.strip())
    root = base64.b64encode(checkpoint.root).decode("ascii")
    assert f"OK {checkpoint.origin} size 70000 root {root}:" in checked.stdout
    # 274 bundles (273 full, one of 112). Tiles, as tlog.NewTiles lists them: every full
    # one and every width of each partial one, level 0 (273 + 112), 1 (1 + 17) and 2 (1).
    assert "274 entry bundles, 404 tiles" in checked.stdout
