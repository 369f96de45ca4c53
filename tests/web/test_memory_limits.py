"""The in-memory limiter storage restarts its expiry timer from one thread at a time."""

from __future__ import annotations

import threading
import time

from limits.storage import MemoryStorage, storage_from_string

from anonsign.web import memory_limits
from anonsign.web.memory_limits import ThreadSafeMemoryStorage, served_uri

THREADS = 8


def slow_to_restart(storage_class: type[MemoryStorage]) -> MemoryStorage:
    """``storage_class`` whose new expiry timer takes a moment to be in place: each thread
    that restarts it waits after storing its timer and before starting ``self.timer``,
    the window in which another thread's store lands."""

    class Slow(storage_class):  # type: ignore[valid-type, misc]
        @property
        def timer(self) -> threading.Timer:
            return self._slow_timer  # type: ignore[no-any-return]

        @timer.setter
        def timer(self, value: threading.Timer) -> None:
            self._slow_timer = value
            time.sleep(0.05)

    return Slow()  # type: ignore[no-any-return]


def _increments_at_once(storage: MemoryStorage) -> list[str]:
    """The errors of ``THREADS`` threads incrementing at once as the expiry timer is due."""
    storage.timer.join(5)  # finished: the next increment restarts it
    go = threading.Barrier(THREADS)
    errors: list[str] = []

    def increment(n: int) -> None:
        go.wait(10)
        try:
            storage.incr(f"key{n}", 60)
        except RuntimeError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=increment, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_threads_incrementing_as_the_timer_is_due_start_it_once() -> None:
    # The library's own MemoryStorage here fails with "threads can only be started once"
    # (and leaves threading's bookkeeping corrupt), what a flood of sign posts met in one
    # threaded worker: a 500.
    storage = slow_to_restart(ThreadSafeMemoryStorage)
    assert _increments_at_once(storage) == []
    assert [storage.get(f"key{n}") for n in range(THREADS)] == [1] * THREADS


def test_memory_settings_are_served_by_it_and_others_are_left_alone() -> None:
    assert served_uri("memory://") == f"{memory_limits.SCHEME}://"
    assert isinstance(storage_from_string(served_uri("memory://")), ThreadSafeMemoryStorage)
    assert served_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
