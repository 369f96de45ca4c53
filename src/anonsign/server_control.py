"""Reaching the running server from the command line: replace its workers, or stop it.

Closing a petition must reach every process that serves (SECURITY.md, "close reaches
every process"): the workers of a running server hold the master key that wrapped the
closed petition's pepper, and Python cannot wipe what it has freed. So ``petition
close`` has gunicorn replace them (SIGHUP: new workers, which read the new master key,
then the old ones leave) and waits until every old worker is gone before it reports
success; ``emergency-close`` and ``lock`` stop the server (SIGTERM) and wait for it to
exit. The server is found by the pid file ``serve`` writes in the instance folder.

Only Linux's ``/proc`` is read; a process that is not an anonsign or gunicorn server
(a stale pid file whose number was reused) is never signalled.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from anonsign.config import Settings
from anonsign.errors import AnonsignError

#: Long enough for a worker to finish a signature in progress (gunicorn's graceful_timeout).
WAIT_SECONDS = 60.0
_POLL = 0.1


class ServerDidNotFollow(AnonsignError):
    """The running server did not replace (or stop) its processes in time; check it with
    `systemctl status anonsign` (or its terminal) and stop it by hand if needed."""


@dataclass(frozen=True)
class RunningServer:
    pid: int

    def workers(self) -> set[int]:
        return children_of(self.pid)

    def alive(self) -> bool:
        return _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def children_of(pid: int) -> set[int]:
    """The live child processes of ``pid`` (gunicorn's workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def find_server(settings: Settings) -> RunningServer | None:
    """The server serving this instance, if one is running (its pid file is current)."""
    try:
        pid = int(settings.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if b"anonsign" not in cmdline and b"gunicorn" not in cmdline:
        return None  # the number now belongs to another program
    if pid == os.getpid():
        return None  # another container's server, whose number this command now has
    return RunningServer(pid) if _alive(pid) else None


def _wait(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(_POLL)
    return bool(condition())  # type: ignore[operator]


def replace_workers(server: RunningServer, *, seconds: float = WAIT_SECONDS) -> int:
    """Have the server start new workers and retire the old ones; return how many left."""
    old = server.workers()
    os.kill(server.pid, signal.SIGHUP)

    def done() -> bool:
        current = server.workers()
        return not (old & current) and bool(current) and not any(_alive(p) for p in old)

    if not _wait(done, seconds):
        raise ServerDidNotFollow()
    return len(old)


def stop_server(server: RunningServer, *, seconds: float = WAIT_SECONDS) -> None:
    """Stop the server and its workers, and wait until none of them is left."""
    workers = server.workers()
    os.kill(server.pid, signal.SIGTERM)
    if not _wait(lambda: not server.alive() and not any(_alive(p) for p in workers), seconds):
        raise ServerDidNotFollow()
