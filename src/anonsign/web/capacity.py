"""How many signatures a worker hashes at once, and the short queue behind them.

Argon2id is the physical limit of the service: each hash holds its memory cost (64 MiB by
default) and a core for its duration. The threaded worker (anonsign.cli.gunicorn_worker)
runs several requests at once so that page loads never wait behind a hash, which means
the number of hashes at once is no longer the number of processes: it is this gate's.

**Sizing.** Hashing more at once than there are cores only adds latency and memory, so
the server has ``min(cores, budget // memory cost)`` slots, where the budget is
``ANONSIGN_MEMORY_BUDGET_MIB`` (half the machine's memory when unset, as ``anonsign
calibrate`` assumes) and the memory cost is that of new petitions
(``ANONSIGN_ARGON2_MEMORY_KIB``); a budget that cannot hold one hash is refused when the
server starts, with a line saying what to change. Behind the slots, at most
``ANONSIGN_HASHING_QUEUE`` posts per slot wait their turn (each a hash long, so the wait
stays short).

**One gate for all workers.** The slots are the host's, not each worker's: the kernel
hands connections to whichever worker wakes first, with no regard for what it is
hashing, so per-worker slots left one worker's posts queued while another sat idle (a
fifth less throughput, measured). :class:`SharedGate` keeps the slots in memory shared by
every worker, made by gunicorn's master before it forks them (anonsign.cli.gunicorn_app)
and installed in each worker when it starts. A slot holds the pid of the process that
took it, so a worker killed mid-hash (out of memory, a timeout) gives its slot back to
the next post that finds none free. Outside gunicorn (the test client, a single process)
the gate is :class:`HashingGate`, the same rules within one process.

**Shedding.** A post that finds the slots and the queue full is answered at once with 503
and ``Retry-After``, before its form token is spent and before anything is read, hashed
or kept: the signer goes back and signs again, the same form still valid. What was
answered with the thank-you page is always a signature the store holds (the answer comes
after the commit), so shedding never loses one. The 503 does not depend on the
identifier: it is decided before the identifier is read.
"""

from __future__ import annotations

import fcntl
import math
import multiprocessing
import os
import select
import tempfile
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, make_response
from flask_babel import lazy_gettext

from anonsign.config import Settings
from anonsign.errors import ConfigError
from anonsign.host import default_budget_mib
from anonsign.web.errors import error_page

EXTENSION = "anonsign.capacity"

#: Seconds a shed signer is asked to wait; the page says "in a minute".
SHED_RETRY_AFTER = 60
#: The hint under errors.MESSAGES[503]'s title (the message the limiter's 503 uses too).
SHED_HINT = lazy_gettext("Nothing was signed. Please try again in a minute.")

KIB_PER_MIB = 1024


@dataclass(frozen=True)
class Capacity:
    """Hashing slots and queue places in one worker process."""

    slots: int
    queue: int

    @classmethod
    def for_settings(cls, settings: Settings, cores: int | None = None) -> Capacity:
        """The host's hashing capacity (see the module docstring)."""
        cores = cores or os.cpu_count() or 1
        budget_mib = settings.memory_budget_mib or default_budget_mib()
        per_hash_mib = math.ceil(settings.argon2.memory_kib / KIB_PER_MIB)
        by_memory = budget_mib // per_hash_mib
        if by_memory < 1:
            raise ConfigError(
                f"A memory budget of {budget_mib} MiB cannot hold one Argon2id hash of "
                f"{per_hash_mib} MiB: raise ANONSIGN_MEMORY_BUDGET_MIB or lower "
                "ANONSIGN_ARGON2_MEMORY_KIB."
            )
        slots = min(cores, by_memory)
        return cls(slots=slots, queue=slots * settings.hashing_queue)


class HashingBusy(Exception):
    """Every slot and queue place of this worker is taken: answer 503 now."""


class HashingGate:
    """A counting semaphore with a bounded queue that refuses instead of waiting longer."""

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity
        self._lock = threading.Condition()
        self._hashing = 0
        self._waiting = 0

    @property
    def in_use(self) -> tuple[int, int]:
        """(hashing, waiting) right now."""
        with self._lock:
            return self._hashing, self._waiting

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold a slot for the block; raise :class:`HashingBusy` if none is near."""
        with self._lock:
            if self._hashing >= self.capacity.slots:
                if self._waiting >= self.capacity.queue:
                    raise HashingBusy()
                self._waiting += 1
                try:
                    while self._hashing >= self.capacity.slots:
                        self._lock.wait()
                finally:
                    self._waiting -= 1
            self._hashing += 1
        try:
            yield
        finally:
            with self._lock:
                self._hashing -= 1
                self._lock.notify()


#: A pid that is no process: a free slot or queue place.
FREE = 0
#: How long a queued post sleeps before it looks again on its own, woken by no release:
#: the way it finds the slot of a process killed mid-hash (which gives nothing back).
RECHECK_SECONDS = 0.25


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _HostLock:
    """A lock between the processes forked after it is made, that a killed holder frees.

    A ``multiprocessing`` lock or condition left held, or waited on, by a process that was
    killed (gunicorn kills a worker past its timeout; the kernel kills one out of memory)
    stays so for ever: its ``notify`` waits for the dead sleeper to wake, and every worker
    of the host would hang behind it. An ``flock`` on a file is released by the kernel
    when its holder dies, however it dies.

    ``flock`` rather than ``fcntl.lockf``: a POSIX record lock belongs to the process,
    and the kernel's deadlock check then sees two threaded workers that each hold one lock
    (this one, a stats file's) while another of their threads waits for the other's, and
    fails the wait with EDEADLK, which no thread deserved. An ``flock`` belongs to an open
    file description, so each process opens the (unlinked) file afresh after the fork,
    through ``/proc/self/fd``; a thread lock keeps one process's threads apart first.
    """

    def __init__(self) -> None:
        # Unlinked at once: nothing on disk names it, and it goes with the last process.
        fd, path = tempfile.mkstemp(prefix="anonsign-gate-")
        os.unlink(path)
        self._inherited = self._fd = fd
        self._threads = threading.Lock()
        weakref.finalize(self, os.close, fd)
        me = weakref.ref(self)

        def after_fork() -> None:
            lock = me()
            if lock is not None:
                lock._own_description()

        os.register_at_fork(after_in_child=after_fork)

    def _own_description(self) -> None:
        # In a new child, before any of its threads: its own description, its own lock.
        self._fd = os.open(f"/proc/self/fd/{self._inherited}", os.O_RDWR | os.O_CLOEXEC)
        self._threads = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class _Wakeup:
    """A pipe shared by the fork: a freed slot writes a byte, a queued post waits for one.

    Unlike a condition, a pipe cannot be left stuck by a process killed while it waits
    (its end simply closes), and a writer never waits for a reader: both ends are
    non-blocking, and a full pipe already holds more wake-ups than there are waiters.
    Every waiter wakes when a byte arrives, one reads it, and all try for the slot under
    the gate's lock; a byte nobody needed costs its next reader one more look.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        weakref.finalize(self, os.close, self._read)
        weakref.finalize(self, os.close, self._write)

    def ring(self) -> None:
        with suppress(BlockingIOError):
            os.write(self._write, b"\0")

    def wait(self, seconds: float) -> None:
        """Until a byte arrives or ``seconds`` pass; takes one byte if there is one."""
        # poll, not select: a busy worker's descriptors may pass select's limit of 1024.
        waiting = select.poll()
        waiting.register(self._read, select.POLLIN)
        waiting.poll(seconds * 1000)
        with suppress(BlockingIOError):
            os.read(self._read, 1)


class SharedGate:
    """:class:`HashingGate`'s rules over the processes forked after it is made.

    The slots and queue places are arrays in memory shared by the fork, each holding the
    pid of the process that took it; :class:`_HostLock` guards them. A queued post does
    not sleep on a condition (a killed sleeper would stop the next ``notify``, see
    :class:`_HostLock`): it waits on a :class:`_Wakeup` that the holder of a slot rings
    when it gives the slot back while posts are queued, so the next hash starts at once
    (a poll every 20 ms left a core idle 10 ms per hash, on average, under load). It also
    looks again every :data:`RECHECK_SECONDS` unrung, and takes back a slot whose process
    has died.
    """

    def __init__(self, capacity: Capacity) -> None:
        context = multiprocessing.get_context("fork")
        self.capacity = capacity
        self._lock = _HostLock()
        self._wakeup = _Wakeup()
        # The pid holding each slot, and each waiting post's.
        self._slots = context.Array("i", max(1, capacity.slots), lock=False)
        self._queue = context.Array("i", max(1, capacity.queue), lock=False)

    @property
    def in_use(self) -> tuple[int, int]:
        """(hashing, waiting) right now, by live processes (a dead one's place is free)."""
        with self._lock.held():
            slots = self._slots[: self.capacity.slots]
            queue = self._queue[: self.capacity.queue]
        hashing = sum(1 for pid in slots if pid != FREE and _alive(pid))
        waiting = sum(1 for pid in queue if pid != FREE and _alive(pid))
        return hashing, waiting

    def _take(self, places: Any, size: int, pid: int) -> int | None:
        """The index of a place now holding ``pid``, after freeing those of dead processes."""
        for index in range(size):
            if places[index] == FREE:
                places[index] = pid
                return index
        for index in range(size):
            holder = places[index]
            if holder != pid and not _alive(holder):
                places[index] = pid
                return index
        return None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold a slot for the block; raise :class:`HashingBusy` if none is near."""
        pid = os.getpid()
        with self._lock.held():
            slot = self._take(self._slots, self.capacity.slots, pid)
            place = None
            if slot is None:
                place = self._take(self._queue, self.capacity.queue, pid)
                if place is None:
                    raise HashingBusy()
        try:
            while slot is None:
                self._wakeup.wait(RECHECK_SECONDS)
                with self._lock.held():
                    slot = self._take(self._slots, self.capacity.slots, pid)
                    if slot is not None and place is not None:
                        self._queue[place] = FREE
                        place = None
        finally:
            if place is not None:
                # Interrupted while queued (the worker is stopping): give the place back.
                with self._lock.held():
                    self._queue[place] = FREE
        try:
            yield
        finally:
            with self._lock.held():
                self._slots[slot] = FREE
                queued = any(pid != FREE for pid in self._queue[: self.capacity.queue])
            if queued:
                self._wakeup.ring()


#: The host-wide gate of a gunicorn worker, installed by :func:`use_shared_gate`.
_shared: SharedGate | None = None


def use_shared_gate(shared: SharedGate) -> None:
    """Make every post of this process take its turn at ``shared`` (a worker's start)."""
    global _shared
    _shared = shared


def gate() -> HashingGate | SharedGate:
    if _shared is not None:
        return _shared
    hashing: HashingGate = current_app.extensions[EXTENSION]
    return hashing


def shed_answer() -> Response:
    """The 503 a shed post gets: nothing was signed, come back in a minute."""
    response = make_response(error_page(503, hint=str(SHED_HINT)))
    response.headers["Retry-After"] = str(SHED_RETRY_AFTER)
    return response


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["anonsign.settings"]
    app.extensions[EXTENSION] = HashingGate(Capacity.for_settings(settings))

    @app.errorhandler(HashingBusy)
    def _busy(_error: HashingBusy) -> Response:
        # Counted by the sign view, which knows the petition (web.stats).
        return shed_answer()
