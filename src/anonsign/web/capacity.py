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

import math
import multiprocessing
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
#: How often a waiting post looks for slots whose process died.
RECLAIM_SECONDS = 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedGate:
    """:class:`HashingGate`'s rules over the processes forked after it is made."""

    def __init__(self, capacity: Capacity) -> None:
        context = multiprocessing.get_context("fork")
        self.capacity = capacity
        self._lock = context.Condition(context.Lock())
        # The pid holding each slot, and each waiting post's.
        self._slots = context.Array("i", max(1, capacity.slots), lock=False)
        self._queue = context.Array("i", max(1, capacity.queue), lock=False)

    @property
    def in_use(self) -> tuple[int, int]:
        with self._lock:
            hashing = sum(1 for pid in self._slots if pid != FREE)
            waiting = sum(1 for pid in self._queue[: self.capacity.queue] if pid != FREE)
            return hashing, waiting

    def _reclaim(self, places: Any) -> None:
        for index, pid in enumerate(places):
            if pid not in (FREE, os.getpid()) and not _alive(pid):
                places[index] = FREE

    def _free(self, places: Any, size: int) -> int | None:
        return next((i for i in range(size) if places[i] == FREE), None)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold a slot for the block; raise :class:`HashingBusy` if none is near."""
        pid = os.getpid()
        with self._lock:
            slot = self._free(self._slots, self.capacity.slots)
            if slot is None:
                self._reclaim(self._slots)
                slot = self._free(self._slots, self.capacity.slots)
            if slot is None:
                place = self._free(self._queue, self.capacity.queue)
                if place is None:
                    self._reclaim(self._queue)
                    place = self._free(self._queue, self.capacity.queue)
                if place is None:
                    raise HashingBusy()
                self._queue[place] = pid
                try:
                    while slot is None:
                        self._lock.wait(RECLAIM_SECONDS)
                        slot = self._free(self._slots, self.capacity.slots)
                        if slot is None:
                            self._reclaim(self._slots)
                            slot = self._free(self._slots, self.capacity.slots)
                finally:
                    self._queue[place] = FREE
            self._slots[slot] = pid
        try:
            yield
        finally:
            with self._lock:
                self._slots[slot] = FREE
                self._lock.notify()


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
        return shed_answer()
