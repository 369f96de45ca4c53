"""Repeated entries in a log of any size, found in bounded memory.

One signature is one entry, so an auditor checks that no entry appears twice. A set of
every entry seen grows with the log (about 100 bytes an entry in Python: a gigabyte for
ten million), so :class:`RepeatFinder` sorts instead: entries arrive in log order, each
run of :data:`RUN_ENTRIES` is sorted in memory by (entry, position) and, once there is
more than one run, written to a temporary file; at the end the runs are merged, and equal
neighbours are the repeats. Memory is one run (tens of megabytes) whatever the log's
size; the temporary files (40 bytes an entry) are removed when the finder is closed.
The entries are the public log's, so nothing secret reaches the disk.

This module finds repeats; it must not judge or word them (``anonsign.audit.verify``
does), and reads and writes nothing but its own temporary files.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from anonsign.audit.merkle import HASH_SIZE

#: Entries sorted in memory at a time: about 25 MiB of Python objects (a 40-byte record
#: costs about 100 bytes as a bytes object in a list).
RUN_ENTRIES = 250_000
_INDEX_BYTES = 8
_RECORD = HASH_SIZE + _INDEX_BYTES
_READ_RECORDS = 4096


@dataclass(frozen=True)
class Repeats:
    """What the finder saw: how many entries were repeats, and the first of them."""

    entries: int
    repeated: int
    #: (position of the first entry equal to it, position of the repeat, the value), for
    #: the repeat with the lowest position; None when every entry is unique.
    first: tuple[int, int, bytes] | None

    @property
    def distinct(self) -> int:
        return self.entries - self.repeated


class RepeatFinder:
    """Feed entries in log order with :meth:`add`; :meth:`result` says which repeat."""

    def __init__(self, run_entries: int = RUN_ENTRIES, tmp_dir: str | None = None) -> None:
        self._run_entries = run_entries
        self._tmp_dir = tmp_dir
        self._run: list[bytes] = []
        self._files: list[IO[bytes]] = []
        self._count = 0

    def add(self, entry: bytes) -> None:
        # Entry, then position big-endian: sorting the records sorts by value, then order.
        self._run.append(entry + self._count.to_bytes(_INDEX_BYTES, "big"))
        self._count += 1
        if len(self._run) >= self._run_entries:
            self._spill()

    def _spill(self) -> None:
        self._run.sort()
        spill = tempfile.TemporaryFile(prefix="anonsign-audit-run-", dir=self._tmp_dir)  # noqa: SIM115 - closed in close()
        self._files.append(spill)
        spill.write(b"".join(self._run))
        spill.flush()
        self._run = []

    def _runs(self) -> list[Iterator[bytes]]:
        self._run.sort()
        runs: list[Iterator[bytes]] = [iter(self._run)]
        for spill in self._files:
            spill.seek(0)
            runs.append(_records(spill))
        return runs

    def result(self) -> Repeats:
        """Merge what was added; call once, after the last :meth:`add`."""
        repeated = 0
        first: tuple[int, int, bytes] | None = None
        previous = b""
        group_start = 0
        for record in heapq.merge(*self._runs()):
            value, position = record[:HASH_SIZE], int.from_bytes(record[HASH_SIZE:], "big")
            if value == previous:
                repeated += 1
                if first is None or position < first[1]:
                    first = (group_start, position, value)
            else:
                previous, group_start = value, position
        return Repeats(entries=self._count, repeated=repeated, first=first)

    def close(self) -> None:
        for spill in self._files:
            spill.close()
        self._files = []
        self._run = []

    def __enter__(self) -> RepeatFinder:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()


def _records(spill: IO[bytes]) -> Iterator[bytes]:
    size = _RECORD
    while chunk := spill.read(size * _READ_RECORDS):
        for offset in range(0, len(chunk), size):
            yield chunk[offset : offset + size]
