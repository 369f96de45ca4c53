"""How many signatures a worker hashes at once, and the short queue behind them.

Argon2id is the physical limit of the service: each hash holds its memory cost (64 MiB by
default) and a core for its duration. The threaded worker (anonsign.cli.gunicorn_worker)
runs several requests at once so that page loads never wait behind a hash, which means
the number of hashes at once is no longer the number of processes: it is this gate's.

**Sizing.** Hashing more at once than there are cores only adds latency and memory, so
the slots of all workers together are ``min(cores, budget // memory cost)``, where the
budget is ``ANONSIGN_MEMORY_BUDGET_MIB`` (half the machine's memory when unset, as
``anonsign calibrate`` assumes) and the memory cost is that of new petitions
(``ANONSIGN_ARGON2_MEMORY_KIB``). Every worker gets at least one slot; a budget that cannot
hold one hash per worker is refused when the server starts, with a line saying what to
change. Behind the slots, at most ``ANONSIGN_HASHING_QUEUE`` posts per slot wait their
turn (each a hash long, so the wait stays short).

**Shedding.** A post that finds the slots and the queue full is answered at once with 503
and ``Retry-After``, before its form token is spent and before anything is read, hashed
or kept: the signer goes back and signs again, the same form still valid. What was
answered with the thank-you page is always a signature the store holds (the answer comes
after the commit), so shedding never loses one. The 503 does not depend on the
identifier: it is decided before the identifier is read.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
        """One worker's share of the host's hashing capacity (see the module docstring)."""
        cores = cores or os.cpu_count() or 1
        budget_mib = settings.memory_budget_mib or default_budget_mib()
        per_hash_mib = math.ceil(settings.argon2.memory_kib / KIB_PER_MIB)
        by_memory = budget_mib // per_hash_mib
        if by_memory < settings.workers:
            raise ConfigError(
                f"A memory budget of {budget_mib} MiB cannot hold one Argon2id hash per "
                f"worker ({settings.workers} x {per_hash_mib} MiB): raise "
                "ANONSIGN_MEMORY_BUDGET_MIB or lower ANONSIGN_WORKERS."
            )
        total = max(settings.workers, min(cores, by_memory))
        slots = max(1, total // settings.workers)
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


def gate() -> HashingGate:
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
