"""Counting each sign post's outcome for ``anonsign stats`` (anonsign.stats says what).

The sign view counts its thank-you pages; the 429 and 503 handlers count their answers to
sign posts. A post is counted under its petition's slug only when that petition exists:
the slug comes from the address bar, and a flood of invented ones must not make counters
(or, with ``memory://``, files). A rate limit can answer before the view has looked the
petition up, so the slugs are known from a list read at most every
:data:`SLUGS_REFRESH_SECONDS`, not a database read per refused post.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask, current_app, request

from anonsign.config import Settings
from anonsign.service import Service
from anonsign.stats import Outcome, Recorder, StatsUnavailable, open_store

EXTENSION = "anonsign.stats"
SIGN_ENDPOINT = "public.sign"
#: A slug not in the list is looked for again after this long at the soonest.
SLUGS_REFRESH_SECONDS = 10.0

log = logging.getLogger("anonsign.stats")


class KnownSlugs:
    """The petitions' slugs, read again when an unknown one comes, at most so often."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._slugs: frozenset[str] = frozenset()
        self._read_at = -SLUGS_REFRESH_SECONDS
        self._lock = threading.Lock()

    def __contains__(self, slug: object) -> bool:
        if slug in self._slugs:
            return True
        with self._lock:
            now = time.monotonic()
            if slug not in self._slugs and now - self._read_at >= SLUGS_REFRESH_SECONDS:
                self._read_at = now
                self._slugs = frozenset(p.slug for p in self.service.petitions())
            return slug in self._slugs


class SignStats:
    """One app's recorder and the petitions it may count under."""

    def __init__(self, recorder: Recorder, slugs: KnownSlugs) -> None:
        self.recorder = recorder
        self.slugs = slugs

    def count(self, slug: str, outcome: Outcome) -> None:
        self.recorder.add(slug, outcome)

    def count_answer(self, outcome: Outcome) -> None:
        """Count a refusal of the current request, if it is a sign post to a petition."""
        if self.recorder.store is None or request.endpoint != SIGN_ENDPOINT:
            return
        slug = (request.view_args or {}).get("slug")
        try:
            known = isinstance(slug, str) and slug in self.slugs
        except Exception as exc:  # the database is down: the answer still goes out
            self.recorder.failed(exc)
            return
        if known:
            self.recorder.add(str(slug), outcome)


def sign_stats() -> SignStats:
    stats: SignStats = current_app.extensions[EXTENSION]
    return stats


def init_app(app: Flask, service: Service) -> None:
    settings: Settings = app.extensions["anonsign.settings"]
    try:
        store = open_store(settings)
    except StatsUnavailable as exc:
        log.warning("Operator stats are off: %s", exc)
        store = None
    app.extensions[EXTENSION] = SignStats(Recorder(store), KnownSlugs(service))
