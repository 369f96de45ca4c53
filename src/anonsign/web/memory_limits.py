"""The limits library's in-memory storage, with its expiry timer started by one thread.

``limits.storage.MemoryStorage`` (5.8.0 and before) restarts its expiry timer on every
counter increment when the timer has finished, unlocked: two request threads of one
threaded worker that both find it finished both make a timer, and one then starts the
other's a second time, ``RuntimeError: threads can only be started once``, a 500 for a
sign post (seen under a flood, tests/web/test_overload_live.py; upstream,
alisaifee/limits#352). This storage takes a lock around that restart and changes nothing
else. It is registered under its own scheme; :data:`SCHEME` is what ``memory://``
settings are served with (anonsign.web.limits).
"""

from __future__ import annotations

import threading
from typing import Any

from limits.storage import MemoryStorage

SCHEME = "anonsign-memory"


class ThreadSafeMemoryStorage(MemoryStorage):
    """:class:`MemoryStorage` whose expiry timer is restarted under a lock."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012 - as limits declares it, on each storage class

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any
    ) -> None:
        self._timer_lock = threading.Lock()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._timer_lock = threading.Lock()

    # MemoryStorage calls ``self.__schedule_expiry()``, which Python names this way.
    def _MemoryStorage__schedule_expiry(self) -> None:
        with self._timer_lock:
            super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


def served_uri(uri: str) -> str:
    """``uri``, with a ``memory://`` storage served by :class:`ThreadSafeMemoryStorage`."""
    scheme, sep, rest = uri.partition("://")
    return f"{SCHEME}{sep}{rest}" if sep and scheme.lower() == "memory" else uri
