"""Stats in a small file per petition on tmpfs, shared by one host's workers.

Each file is a ring of :data:`~anonsign.stats.KEPT_BUCKETS` records, one per ten-minute
step of the clock, each the step's number and its three counters; a step's record is
reset when the ring comes round to it again, so the file never grows and nothing older
than a day is in it. A worker adds one under an ``flock`` of its own open file (with a
thread lock first: an ``flock`` does not keep the threads sharing a file apart) held for
a read and a write of 24 bytes; the kernel frees the lock if the worker dies holding it
(why ``flock`` and not ``lockf``: anonsign.web.capacity, ``_HostLock``). The files are
in a directory only the server's user can read, on memory-backed storage, or nowhere:
:meth:`FileStats.in_directory` refuses any other file system, so a count is never
written to a disk.

Layout (little-endian): the 8-byte magic :data:`MAGIC` (its last two digits the
version), the step length and the number of records (``<II``), then the records
(``<qIII4x``: step number, accepted, limited, shed).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from anonsign.domain.petitions import SLUG_PATTERN
from anonsign.instance import MEMORY_FILESYSTEMS, filesystem_type
from anonsign.stats import (
    BUCKET_SECONDS,
    KEPT_BUCKETS,
    Buckets,
    Counts,
    Outcome,
    StatsUnavailable,
    bucket_of,
)

MAGIC = b"ASTATS01"
HEADER = struct.Struct("<8sII")
RECORD = struct.Struct("<qIII4x")
FILE_SIZE = HEADER.size + KEPT_BUCKETS * RECORD.size
SUFFIX = ".stats"


class FileStats:
    """Counters in ``<directory>/<slug>.stats`` (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = f"files in {directory}"
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()
        self._opening = threading.Lock()
        # An flock is the open file's, which a worker's threads share: they must also
        # take turns, or two of them read the same count and one is lost.
        self._counting = threading.Lock()

    @classmethod
    def in_directory(cls, directory: Path) -> FileStats:
        """The store in ``directory`` (made at the first count); refused off memory-backed
        storage."""
        kind = filesystem_type(directory)
        if kind not in MEMORY_FILESYSTEMS:
            raise StatsUnavailable(
                f"{directory} is on {kind}, not memory-backed storage, and counts of when "
                "signatures came must not reach a disk: set ANONSIGN_MASTER_KEY_FILE to a "
                "path on tmpfs, ANONSIGN_STATS_STORAGE_URI to a Redis URI, or it to off."
            )
        return cls(directory)

    def _path(self, slug: str) -> Path:
        # Only a petition's slug is ever a file name here, never what someone typed.
        if not SLUG_PATTERN.fullmatch(slug):
            raise ValueError(f"not a petition slug: {slug!r}")
        return self.directory / f"{slug}{SUFFIX}"

    def _fd(self, slug: str) -> int:
        with self._opening:
            if self._pid != os.getpid():
                # Forked: the parent's descriptors share its file offsets; open afresh.
                self._fds, self._pid = {}, os.getpid()
            fd = self._fds.get(slug)
            if fd is None:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self._path(slug), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._fds[slug] = fd
            return fd

    def add(self, slug: str, outcome: Outcome, now: float) -> None:
        fd = self._fd(slug)
        bucket = bucket_of(now)
        offset = HEADER.size + (bucket % KEPT_BUCKETS) * RECORD.size
        with self._counting:
            self._add_locked(fd, offset, bucket, outcome)

    def _add_locked(self, fd: int, offset: int, bucket: int, outcome: Outcome) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size != FILE_SIZE:
                os.ftruncate(fd, 0)
                os.pwrite(fd, HEADER.pack(MAGIC, BUCKET_SECONDS, KEPT_BUCKETS), 0)
                os.ftruncate(fd, FILE_SIZE)
            step, accepted, limited, shed = RECORD.unpack(os.pread(fd, RECORD.size, offset))
            if step != bucket:
                step, accepted, limited, shed = bucket, 0, 0, 0
            if outcome is Outcome.ACCEPTED:
                accepted += 1
            elif outcome is Outcome.LIMITED:
                limited += 1
            else:
                shed += 1
            os.pwrite(fd, RECORD.pack(step, accepted, limited, shed), offset)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def read(self, slugs: Iterable[str], now: float) -> Mapping[str, Buckets]:
        oldest = bucket_of(now) - KEPT_BUCKETS + 1
        result: dict[str, Buckets] = {}
        for slug in slugs:
            buckets = Buckets()
            result[slug] = buckets
            try:
                fd = os.open(self._path(slug), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # nothing counted yet since the machine started
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                data = os.pread(fd, FILE_SIZE, 0)
            finally:
                os.close(fd)
            if len(data) != FILE_SIZE or HEADER.unpack_from(data)[0] != MAGIC:
                continue  # being made, or from another version: nothing to read
            for index in range(KEPT_BUCKETS):
                step, accepted, limited, shed = RECORD.unpack_from(
                    data, HEADER.size + index * RECORD.size
                )
                if step >= oldest and (accepted or limited or shed):
                    buckets.by_bucket[step] = Counts(accepted, limited, shed)
        return result
