"""What an operator sees of an attack: counts of sign posts, never a record of one.

``anonsign stats`` answers "is someone flooding us, and are real signers getting
through?" without logs, which would identify people. The serving workers add one to a
counter for each sign post's outcome:

========  ===============================================================================
accepted  answered with the thank-you page (a new signature or a repeat: the counts say
          nothing the answer would not)
limited   answered 429 by a rate limit (anonsign.web.limits)
shed      answered 503: every hashing slot and queue place was taken
          (anonsign.web.capacity), or the limiter's storage could not be reached
========  ===============================================================================

and ``anonsign stats`` adds the signatures waiting for the next batch, from the database.
Refused forms (replayed, too quick, the honeypot) are counted nowhere: a refusal must not
be told from the other form errors, in the answer or anywhere else.

**What a counter is.** One per petition, outcome and :data:`BUCKET_SECONDS` step of the
clock, kept :data:`KEPT_SECONDS` and then overwritten or expired: no request, address,
circuit, identifier or per-request time is stored, only how many posts had each outcome
in each ten-minute step. The steps are coarse on purpose: a count of one in a step says
that somebody signed in those ten minutes, which is as near to a per-signature time as
these counts come (SECURITY.md, "Operator stats", says what a seized running server gives
away, and ``ANONSIGN_STATS_STORAGE_URI=off`` counts nothing).

**Where.** ``memory://`` (the default): a small file per petition on tmpfs beside the
unlocked keys (:class:`anonsign.stats.ring.FileStats`), shared by this host's workers
and gone at power-off; stats are off, with a warning, where that directory is not
memory-backed. A Redis URI: keys that expire (:class:`anonsign.stats.redis_store.RedisStats`),
shared by every host. Counting never holds up or changes an answer: a store that cannot
be written to is logged (at most once a minute) and skipped.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from anonsign.config import STATS_OFF, Settings

log = logging.getLogger("anonsign.stats")

#: The step of the clock counted as one (coarse on purpose, see the module docstring).
BUCKET_SECONDS = 600
#: How long a count is kept.
KEPT_SECONDS = 24 * 3600
KEPT_BUCKETS = KEPT_SECONDS // BUCKET_SECONDS

#: The windows ``anonsign stats`` shows, by name and length.
WINDOWS: tuple[tuple[str, int], ...] = (
    ("10 min", 600),
    ("1 hour", 3600),
    ("24 hours", KEPT_SECONDS),
)


class Outcome(enum.Enum):
    """What a sign post was answered with (the counters' names)."""

    ACCEPTED = "accepted"
    LIMITED = "limited"
    SHED = "shed"


@dataclass
class Counts:
    """How many sign posts had each outcome."""

    accepted: int = 0
    limited: int = 0
    shed: int = 0

    def add(self, other: Counts) -> None:
        self.accepted += other.accepted
        self.limited += other.limited
        self.shed += other.shed

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "limited": self.limited, "shed": self.shed}


@dataclass
class Buckets:
    """One petition's counts by clock step (:func:`bucket_of`)."""

    by_bucket: dict[int, Counts] = field(default_factory=dict)

    def window(self, seconds: int, now: float) -> Counts:
        """The counts of the steps that overlap the last ``seconds`` (whole steps, so up
        to one step further back)."""
        first = bucket_of(now - seconds)
        total = Counts()
        for bucket, counts in self.by_bucket.items():
            if first <= bucket <= bucket_of(now):
                total.add(counts)
        return total


def bucket_of(when: float) -> int:
    """The clock step that holds ``when`` (seconds since the epoch)."""
    return int(when // BUCKET_SECONDS)


class StatsStore(Protocol):
    """Where the workers count and ``anonsign stats`` reads."""

    #: Said by ``anonsign stats``: where the counts are (no password).
    description: str

    def add(self, slug: str, outcome: Outcome, now: float) -> None:
        """Count one post; may raise OSError or a storage error (the caller logs it)."""

    def read(self, slugs: Iterable[str], now: float) -> Mapping[str, Buckets]:
        """The kept counts of each petition."""


class StatsUnavailable(Exception):
    """The configured stats store cannot be used; the message says why."""


def open_store(settings: Settings) -> StatsStore | None:
    """The store the settings name, or None when stats are off."""
    uri = settings.stats_storage_uri
    if uri == STATS_OFF:
        return None
    if uri.startswith("memory:"):
        from anonsign.stats.ring import FileStats

        return FileStats.in_directory(settings.stats_dir)
    from anonsign.stats.redis_store import RedisStats

    return RedisStats.from_uri(uri)


class Recorder:
    """The workers' side: count an outcome, and never let counting fail an answer."""

    #: At most one "cannot count" line per this many seconds and process.
    LOG_INTERVAL = 60.0

    def __init__(self, store: StatsStore | None) -> None:
        self.store = store
        self._logged = -math.inf

    def add(self, slug: str, outcome: Outcome) -> None:
        if self.store is None:
            return
        try:
            self.store.add(slug, outcome, time.time())
        except Exception as exc:  # counting must never fail an answer
            self.failed(exc)

    def failed(self, exc: Exception) -> None:
        """Say that a count was lost, at most once a :data:`LOG_INTERVAL` (never why in
        terms of the request: only the kind of error and where the counts are)."""
        now = time.monotonic()
        if now - self._logged >= self.LOG_INTERVAL:
            self._logged = now
            where = self.store.description if self.store is not None else "nowhere"
            log.warning(
                "Operator stats could not be counted (%s: %s); answers are unaffected.",
                type(exc).__name__,
                where,
            )
