"""What the memory of the serving processes holds, read as an attacker with a snapshot would.

SECURITY.md promises that closing a petition reaches every process that serves (none
still holds the master key used before the close, nor the closed petition's pepper or
wrapped pepper), that emergency-close leaves no serving process at all, and that a
submission leaves memory with the worker that handled it, within the recycling bounds.
These tests run a real server, read every readable mapping of its master process and
workers through /proc/PID/mem, and search the bytes. Each has a control: the same scan
finds the secret before the step that must remove it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anonsign.config import Settings, load_settings
from anonsign.crypto.master import unwrap_pepper
from anonsign.instance import load_server_keys
from anonsign.server_control import children_of
from anonsign.service import Service
from anonsign.storage.repository import Repository
from tests.forensics import MemoryUnreadable, found_in_memory
from tests.live import ANONSIGN, Browser, free_port, running

PASSPHRASE = "memory test unlock passphrase"
SHM = Path("/dev/shm")  # noqa: S108 - memory-backed on purpose


@pytest.fixture
def instance(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    """A production instance made by the real CLI (real key-file and seal costs), on
    SQLite and on PostgreSQL."""
    if not SHM.is_dir():
        pytest.skip("no memory-backed /dev/shm on this machine")
    unlocked = SHM / f"anonsign-test-{secrets.token_hex(6)}"
    env = {
        "ANONSIGN_INSTANCE": str(tmp_path / "instance"),
        "ANONSIGN_DATABASE_URL": database_url,
        "ANONSIGN_MASTER_KEY_FILE": str(unlocked / "master.key"),
        "ANONSIGN_PASSPHRASE": PASSPHRASE,
        "ANONSIGN_WORKERS": "2",
        "ANONSIGN_PUBLISHER_PERIOD": "0",
        # Cheaper dedup keys than production: these tests are about memory, not cost.
        "ANONSIGN_ARGON2_MEMORY_KIB": "8192",
        "ANONSIGN_ARGON2_TIME_COST": "1",
    }
    cli(env, "init")
    cli(env, "keygen", "alice", "--out-dir", str(tmp_path / "keys"))
    text = tmp_path / "text.md"
    text.write_text("A petition whose secrets must leave memory.")
    recipient = str(tmp_path / "keys" / "alice.pub")
    for slug in ("closing", "staying"):
        cli(env, "petition", "create", slug, "--title", slug, "--text-file", str(text),
            "--identifier", "email", "--recipient", recipient)  # fmt: skip
    yield env
    shutil.rmtree(unlocked, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [ANONSIGN, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def settings_of(env: dict[str, str]) -> Settings:
    return load_settings(env)


def serving(pid: int) -> set[int]:
    """The server's master process and its workers."""
    return {pid} | children_of(pid)


def scan(pids: set[int], needles: dict[str, bytes]) -> dict[int, list[str]]:
    try:
        return found_in_memory(pids, needles)
    except MemoryUnreadable as exc:
        pytest.skip(f"this system does not let a test read a server's memory: {exc}")


def test_close_reaches_every_serving_process(instance: dict[str, str], tmp_path: Path) -> None:
    settings = settings_of(instance)
    port = free_port()
    with running(["serve", "--port", str(port)], instance, port, tmp_path / "s.log") as server:
        browser = Browser(f"http://127.0.0.1:{port}")
        for i in range(6):  # both workers, most likely, unwrap both peppers
            for slug in ("closing", "staying"):
                assert browser.sign(slug, f"memory-{i}@example.org")[0] == 200
        service = Service.open(settings)
        try:
            with service.db.reading() as session:
                petition, wrapped = Repository(session).petition_with_pepper("closing")
        finally:
            service.close_connections()
        assert wrapped is not None
        old_master = load_server_keys(settings).master
        needles = {
            "old master key": old_master,
            "pepper": unwrap_pepper(old_master, petition.id, wrapped),
            "wrapped pepper": wrapped,
        }
        before = scan(serving(server.pid), needles)
        assert any("old master key" in names for names in before.values()), (
            f"the scan cannot find the master key where it is: {before}"
        )
        assert server.pid not in before, f"the master process held a secret: {before}"

        output = cli(instance, "petition", "close", "closing", "--yes")
        assert "Replaced the server's 2 worker process(es)" in output, output
        after = scan(serving(server.pid), needles)
        assert after == {}, f"serving processes still hold secrets of the closed petition: {after}"
        assert load_server_keys(settings).master != old_master

        # The server goes on with the new key; the closed petition refuses.
        assert browser.sign("staying", "after-close@example.org")[0] == 200
        status, _ = browser.request("/p/closing")
        assert status == 200
        assert browser.request("/p/closing/sign", {"identifier": "x@example.org"})[0] in {400, 410}


def test_emergency_close_leaves_no_serving_process(
    instance: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    with running(["serve", "--port", str(port)], instance, port, tmp_path / "s.log") as server:
        browser = Browser(f"http://127.0.0.1:{port}")
        assert browser.sign("staying", "someone@example.org")[0] == 200
        workers = children_of(server.pid)
        assert workers
        output = cli(instance, "emergency-close", "--yes")
        assert "Stopped the server" in output, output
        assert server.wait(timeout=30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not Path(instance["ANONSIGN_MASTER_KEY_FILE"]).exists()


def _retire_all(server_pid: int, old: set[int], request: object, bound: int, seconds: float) -> int:
    """Make requests (at most ``bound``) until none of ``old`` serves; return how many."""
    deadline = time.monotonic() + seconds
    made = 0
    while old & children_of(server_pid) and made < bound and time.monotonic() < deadline:
        request()  # type: ignore[operator]
        made += 1
    return made


def test_a_submission_leaves_memory_within_the_request_bound(
    instance: dict[str, str], tmp_path: Path
) -> None:
    env = {**instance, "ANONSIGN_WORKERS": "1", "ANONSIGN_WORKER_MAX_REQUESTS": "20"}
    contact = f"zq-memory-contact-{secrets.token_hex(4)} at the old bazaar"
    identifier = f"zq-memory-{secrets.token_hex(4)}@example.org"
    needles = {"contact": contact.encode(), "identifier": identifier.encode()}
    port = free_port()
    with running(["serve", "--port", str(port)], env, port, tmp_path / "s.log") as server:
        browser = Browser(f"http://127.0.0.1:{port}")
        assert browser.sign("staying", identifier, contact)[0] == 200
        old = children_of(server.pid)
        before = scan(serving(server.pid), needles)
        assert any("contact" in names for names in before.values()), (
            f"the scan cannot find the submission where it is: {before}"
        )
        # 20 requests and a jitter of at most 2: the bound SECURITY.md states.
        made = _retire_all(server.pid, old, lambda: browser.request("/"), 22, 60)
        assert not old & children_of(server.pid), f"the worker still serves after {made}"
        time.sleep(0.5)  # the new worker is up
        assert scan(serving(server.pid), needles) == {}


@pytest.mark.slow
def test_a_submission_leaves_memory_within_the_age_bound(
    instance: dict[str, str], tmp_path: Path
) -> None:
    env = {**instance, "ANONSIGN_WORKER_MAX_AGE": "4"}
    contact = f"zq-idle-contact-{secrets.token_hex(4)} by the river"
    port = free_port()
    with running(["serve", "--port", str(port)], env, port, tmp_path / "s.log") as server:
        browser = Browser(f"http://127.0.0.1:{port}")
        assert browser.sign("staying", "idle@example.org", contact)[0] == 200
        old = children_of(server.pid)
        assert scan(serving(server.pid), {"contact": contact.encode()}), "control"
        # Nobody comes: the workers still leave, at most 4 s (+10%) after they started.
        deadline = time.monotonic() + 20
        while old & children_of(server.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not old & children_of(server.pid), "idle workers were not retired by age"
        time.sleep(0.5)
        assert scan(serving(server.pid), {"contact": contact.encode()}) == {}


def test_a_second_server_for_the_same_instance_is_refused(
    instance: dict[str, str], tmp_path: Path
) -> None:
    """One server per instance, or a close could miss the processes of the other."""
    port = free_port()
    with running(["serve", "--port", str(port)], instance, port, tmp_path / "s.log") as server:
        second = subprocess.run(
            [ANONSIGN, "serve", "--port", str(free_port())],
            env={**os.environ, **instance},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"already running for this instance (process {server.pid})" in second.stderr
