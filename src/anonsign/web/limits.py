"""Rate limits that work over Tor and identify nobody (SECURITY.md, "Rate limits").

Every onion client reaches the app through the tor daemon, so a limit keyed by address
would put everybody in one bucket (one abuser locks everyone out), and Flask-Limiter
stores whatever its key function returns as it is (``LIMITER/203.0.113.7/...``). The
limits here are keyed by nothing that identifies anyone:

=============  ==========================  ==========================================
layer          counts                      key
=============  ==========================  ==========================================
per circuit    sign posts                  the peer's bucket name (below)
per petition   sign posts to one petition  ``sign:<slug>`` (an existing petition's)
global         every sign post             ``sign``
pages          GET/HEAD of public pages    the peer's bucket name
=============  ==========================  ==========================================

**The peer.** On the onion service, tor's ``HiddenServiceExportCircuitID haproxy``
starts every stream with a PROXY v1 line whose source address carries the circuit id
(``fc00:dead:beef:4dad::AABB:CCDD``); gunicorn reads it on the unix socket
(``proxy_protocol``, anonsign.cli.gunicorn_app), so ``REMOTE_ADDR`` is that address. On
a clearnet mirror it is the client's address, as the TCP socket gives it. Either way
the key is its HMAC under a random key that lives only in this process's memory and is
replaced hourly (anonsign.crypto.buckets): the limiter's key function returns the HMAC,
never the address. Forwarding headers are never read
(anyone can send them). A request with no peer address at all (a unix socket without
tor's PROXY line) gets no per-circuit limit, only the caps, and a warning in the log.

**Order.** Each sign layer is its own Flask-Limiter instance, checked outermost first:
per circuit, then per petition, then global. A refused request counts in the layers up to
the one that refused it and no further, so a circuit over its quota does not use up the
caps everybody shares, and a flood aimed at one petition does not use up the global cap
the other petitions need. (Flask-Limiter sorts the limits of one instance by the length
of their window, not by the order they were declared, so one instance could not keep
this order.)

**When.** The sign layers run as the sign view is entered: after routing and the CSRF
check, before the form's identifier is read and before any Argon2 work, so a refused
request is cheap, and a 429 cannot depend on whether an identifier had signed. Page
limits run before any page view. Nothing counts after the answer is made (no
``deduct_when``, no headers), so an accepted signature is never turned into an error
after its work is done.

**Counting.** ``fixed-window``: one counter per key and window, expiring with it.
``moving-window`` keeps a timestamp per request, a record of when each signature came,
which DESIGN.md forbids in the limiter's storage. No ``X-RateLimit`` headers.

**Storage.** ``memory://`` by default: each worker process counts for itself and forgets
when it is recycled. ``ANONSIGN_RATELIMIT_STORAGE_URI=redis://...`` shares the caps
between processes and hosts; bucket names stay per process (each process has its own
key, which never leaves it), so a circuit gets its quota once per worker it lands on.
While the storage cannot be reached, sign posts **fail closed** with a 503 and
``Retry-After: 60`` (a signature is never accepted uncounted, and the check comes before
the thank-you, never after it), while page limits fail open: reading a petition costs no
Argon2, and the page says nothing about who reads it.

**Logs.** Flask-Limiter logs each breach at INFO with its key; its logger is kept at
WARNING so no bucket name reaches a log, and the privacy filter (anonsign.logs) is not
what hides it.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, make_response, request
from flask_babel import lazy_gettext, ngettext
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from limits.errors import StorageError

from anonsign.config import Settings
from anonsign.crypto.buckets import BucketKey
from anonsign.stats import Outcome
from anonsign.web import public
from anonsign.web.errors import error_page
from anonsign.web.memory_limits import served_uri
from anonsign.web.stats import sign_stats

#: Counters only (see the module docstring); never moving-window.
STRATEGY = "fixed-window"
#: The view whose every post costs an Argon2id computation.
SIGN_ENDPOINT = "public.sign"
#: Seconds a client is asked to wait while the limiter's storage is unreachable.
RETRY_WHEN_STORAGE_DOWN = 60
#: A shared store that hangs must not hold a worker: give up on it after this long.
STORAGE_TIMEOUT_SECONDS = 2
#: At most one "storage unreachable" line per this many seconds and process.
STORAGE_DOWN_LOG_INTERVAL = 60.0

#: Only sign posts see it (page limits fail open); the title is errors.MESSAGES[503].
STORAGE_DOWN_HINT = lazy_gettext("Nothing was signed. Please try again in a minute.")

log = logging.getLogger("anonsign.limits")


def peer_address() -> str | None:
    """The address the connection came from (a Tor circuit's, under tor's PROXY line).

    ``REMOTE_ADDR`` only: gunicorn sets it from the socket or from the PROXY line of an
    allowed peer, while X-Forwarded-For and the like are whatever the client wrote.
    """
    raw = request.environ.get("REMOTE_ADDR") or ""
    try:
        # One spelling per address, so ``::0:1`` and ``::1`` share one bucket.
        return ipaddress.ip_address(raw).compressed
    except ValueError:
        return None


def _petition_key() -> str:
    slug = str((request.view_args or {}).get("slug", ""))
    # Only an existing petition gets a key (an unknown one is a 404 from here): the slug
    # comes from the address bar, and whatever someone types there must not become a
    # key in the limiter's storage.
    return f"sign:{public.petition_for(slug).slug}"


def _global_key() -> str:
    return "sign"


def limited_answer(seconds: int) -> Response:
    """The 429 page: when to come back, in the page's language, and ``Retry-After``."""
    minutes = max(1, math.ceil(seconds / 60))
    if request.endpoint == SIGN_ENDPOINT:
        hint = ngettext(
            "Nothing was signed. Please come back in %(num)d minute and sign again.",
            "Nothing was signed. Please come back in %(num)d minutes and sign again.",
            minutes,
        )
    else:
        hint = ngettext(
            "Please come back in %(num)d minute.", "Please come back in %(num)d minutes.", minutes
        )
    response = make_response(error_page(429, hint=hint))
    response.headers["Retry-After"] = str(seconds)
    return response


def storage_down_answer() -> Response:
    response = make_response(error_page(503, hint=str(STORAGE_DOWN_HINT)))
    response.headers["Retry-After"] = str(RETRY_WHEN_STORAGE_DOWN)
    return response


class RateLimits:
    """The limiters of one app, and the in-memory key their bucket names use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Made here, in the worker that serves (the app is built after the fork).
        self.bucket_key = BucketKey()
        self._warned_no_peer = False
        self._storage_down_logged = -math.inf
        self.per_circuit = self._limiter(fail_open=False)
        self.per_petition = self._limiter(fail_open=False)
        self.total = self._limiter(fail_open=False)
        self.pages = self._limiter(fail_open=True)

    @property
    def limiters(self) -> tuple[Limiter, ...]:
        return (self.per_circuit, self.per_petition, self.total, self.pages)

    def _limiter(self, *, fail_open: bool) -> Limiter:
        uri = self.settings.ratelimit_storage_uri
        options: dict[str, str | int] = {"wrap_exceptions": True}
        if not uri.startswith("memory:"):
            options |= {
                "socket_timeout": STORAGE_TIMEOUT_SECONDS,
                "socket_connect_timeout": STORAGE_TIMEOUT_SECONDS,
            }
        return Limiter(
            key_func=self.bucket,
            strategy=STRATEGY,
            storage_uri=served_uri(uri),
            storage_options=options,
            headers_enabled=False,
            # Sign layers: a storage error is raised, and answered 503 (fail closed).
            # Page layer: logged and let through (fail open).
            swallow_errors=fail_open,
            in_memory_fallback_enabled=False,
            on_breach=self._refused,
        )

    def bucket(self) -> str:
        """The key function: the peer's bucket name, never its address."""
        return self.bucket_key.name(peer_address() or "")

    def no_peer(self) -> bool:
        """True (the per-circuit layers are skipped) when the request has no address."""
        if peer_address() is not None:
            return False
        if not self._warned_no_peer:
            self._warned_no_peer = True
            log.warning(
                "Requests arrive without a peer address (a unix socket without tor's "
                "HiddenServiceExportCircuitID haproxy): per-circuit limits are off, only "
                "the global and per-petition caps apply."
            )
        return True

    def _refused(self, limit: RequestLimit) -> Response:
        try:
            # window[0]: when the window ends (RequestLimit.reset_at adds a second).
            seconds = max(1, math.ceil(limit.window[0] - time.time()))
        except StorageError:
            seconds = RETRY_WHEN_STORAGE_DOWN
        return limited_answer(seconds)

    def storage_down(self, error: StorageError) -> Response:
        now = time.monotonic()
        if now - self._storage_down_logged >= STORAGE_DOWN_LOG_INTERVAL:
            self._storage_down_logged = now
            log.warning(
                "The rate limiter's storage cannot be reached (%s): signatures are refused "
                "with 503 until it is back.",
                type(error.storage_error).__name__,
            )
        return storage_down_answer()


def init_app(app: Flask) -> None:
    """Limit the sign view and the public pages; call after the blueprints are registered."""
    settings: Settings = app.extensions["anonsign.settings"]
    limits = RateLimits(settings)
    for limiter in limits.limiters:
        limiter.init_app(app)
    app.extensions["anonsign.limits"] = limits
    # Its INFO line on every breach names the key (SECURITY.md, "Rate limits").
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)

    # Innermost first: the outermost wrapper (per circuit) is checked first.
    view: Callable[..., Any] = app.view_functions[SIGN_ENDPOINT]
    view = limits.total.limit(settings.ratelimit_global, key_func=_global_key)(view)
    view = limits.per_petition.limit(settings.ratelimit_petition, key_func=_petition_key)(view)
    view = limits.per_circuit.limit(settings.ratelimit_circuit, exempt_when=limits.no_peer)(view)
    app.view_functions[SIGN_ENDPOINT] = view

    # The public blueprint's pages (the log's JSON is for auditors fetching many pages in
    # a row, and the stylesheet is exempt). Shared: one bucket per peer for all the
    # pages together, not one per page.
    limits.pages.shared_limit(
        settings.ratelimit_pages, "pages", methods=["GET", "HEAD"], exempt_when=limits.no_peer
    )(public.bp)

    @app.errorhandler(RateLimitExceeded)
    def _limited(error: RateLimitExceeded) -> Response:
        sign_stats().count_answer(Outcome.LIMITED)
        # The page on_breach made (RateLimits._refused), with the window's Retry-After.
        if isinstance(error.response, Response):
            return error.response
        return limited_answer(RETRY_WHEN_STORAGE_DOWN)

    @app.errorhandler(StorageError)
    def _storage_down(error: StorageError) -> Response:
        sign_stats().count_answer(Outcome.SHED)
        return limits.storage_down(error)
