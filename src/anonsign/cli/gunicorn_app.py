"""Running the web app under gunicorn, configured for privacy.

This module is the one source of gunicorn settings: ``anonsign serve`` uses
:func:`gunicorn_options`, and so does ``deploy/gunicorn.conf.py`` for operators who run
gunicorn themselves (with :mod:`anonsign.wsgi` as the app), so the two cannot drift apart.
No access log, the error log through :class:`anonsign.logs.PrivacyFilter`, no control
socket (gunicorn 25+ opens one by default), no trust in forwarding headers, tor's PROXY
line read for the per-circuit rate limit, and tight request limits. The app is built in
each worker, after the fork, so every worker has its own database connections.

The master process (gunicorn's arbiter) never reads a secret: the readiness check that
opens the instance runs in a child process that exits before serving starts, so after a
close has replaced the workers, no process that serves has ever held the old master key
(SECURITY.md, "close reaches every process"). Workers are recycled after a bounded
number of requests and a bounded age, so a submission does not stay for long in the
memory of a live process that Python cannot wipe.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from anonsign.cli.isolated import run_isolated
from anonsign.config import Settings, load_settings
from anonsign.errors import AnonsignError
from anonsign.instance import uses_dev_master_key
from anonsign.logs import PrivacyFilter, configure_logging
from anonsign.storage.pool import ConnectionBudget, check_connection_budget, pool_size_for
from anonsign.web.capacity import Capacity, SharedGate, use_shared_gate

#: Argon2id dominates a signature; a request that takes longer than this is stuck.
REQUEST_TIMEOUT_SECONDS = 60
#: Open connections per worker (arriving, being served or kept alive): each costs a
#: descriptor and at most ~80 KiB of buffer while its request arrives.
WORKER_CONNECTIONS = 1000
#: Seconds a connection may stay open between requests.
KEEPALIVE_SECONDS = 5
#: Threads per worker beyond the hashing slots and queue: for pages and quick refusals.
SPARE_THREADS = 4


class PrivateLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with every handler behind the privacy filter."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(PrivacyFilter())

    def access(self, *args: Any, **kwargs: Any) -> None:
        """Never write an access line, whatever the configuration says."""


def worker_threads(settings: Settings) -> int:
    """Requests one worker serves at once: ANONSIGN_THREADS, else enough that the posts
    waiting at the hashing gate never leave a worker without one to serve pages and shed
    the rest at once (anonsign.web.capacity)."""
    if settings.threads:
        return settings.threads
    capacity = Capacity.for_settings(settings)
    return capacity.slots + capacity.queue + SPARE_THREADS


def worker_settings(settings: Settings) -> Settings:
    """The settings a worker serves with: its database pool sized to its threads."""
    size = pool_size_for(worker_threads(settings), settings.db_pool_size)
    return settings.with_overrides(db_pool_size=size)


def gunicorn_options(settings: Settings, bind: str, workers: int) -> dict[str, Any]:
    """Every gunicorn setting anonsign relies on, by gunicorn's setting name."""
    capacity = Capacity.for_settings(settings)
    return {
        "bind": [bind],
        "workers": workers,
        # gunicorn's threaded worker, receiving each request whole before a thread sees
        # it (a slow client holds no thread), and whose own error answers carry the
        # security headers and quote nothing back (cli.gunicorn_worker).
        "worker_class": "anonsign.cli.gunicorn_worker.BufferingThreadWorker",
        # Enough threads that the posts waiting at the hashing gate never leave a worker
        # without one to serve pages and shed the rest at once (anonsign.web.capacity).
        "threads": worker_threads(settings),
        # Connections each worker holds open, arriving or kept alive; the rest wait in
        # the listen queue. Bounded again by the descriptor limit (cli.gunicorn_worker).
        "worker_connections": WORKER_CONNECTIONS,
        # Tor Browser reuses a stream for the stylesheet and the next page.
        "keepalive": KEEPALIVE_SECONDS,
        # Made here, in gunicorn's master, so that every worker forked from it shares
        # the host's hashing slots (anonsign.web.capacity).
        "post_worker_init": WorkerSetup(
            settings.worker_max_age,
            settings.request_read_seconds,
            settings.max_content_length,
            gate=SharedGate(capacity),
        ),
        "timeout": REQUEST_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        # No access log: gunicorn's format starts with the client address (%(h)s).
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "logger_class": PrivateLogger,
        # gunicorn 25+ opens ~/.gunicorn/gunicorn.ctl otherwise: a way in we do not need.
        "control_socket_disable": True,
        # anonsign's URLs, cookies and headers are short; anything longer is abuse.
        "limit_request_line": 2048,
        "limit_request_fields": 50,
        "limit_request_field_size": 4096,
        # The unix socket is 0770: the app's user and tor's group only.
        "umask": 0o007,
        # gunicorn trusts every peer of a unix socket as a proxy, and Tor passes a
        # client's headers through unchanged: honour no X-Forwarded-* or SCRIPT_NAME.
        "secure_scheme_headers": {},
        "forwarder_headers": "",
        # tor's HiddenServiceExportCircuitID haproxy (deploy/torrc) starts every stream
        # with a PROXY v1 line naming its circuit; REMOTE_ADDR becomes that address, the
        # per-circuit rate limit's bucket (anonsign.web.limits), so one abuser cannot
        # lock everyone out of a bucket all onion clients share. v1 only: tor writes
        # nothing else, and the binary v2 parser is surface we do not need. On the unix
        # socket only, where tor connects (and any peer may send the line: only tor's
        # group can connect, umask above). On TCP a peer is its own address, and with
        # the protocol on, gunicorn reads 12 bytes before answering anything, so a
        # shorter malformed request would get no answer at all.
        "proxy_protocol": "v1" if bind.startswith("unix:") else "off",
        # Who may send that line over TCP, should an operator turn it on there: loopback
        # only (a PROXY-speaking front); anyone else is refused with 403 and cannot
        # choose its own bucket.
        "proxy_allow_ips": "127.0.0.1,::1",
        "proc_name": "anonsign",
        # petition close, emergency-close and lock find the server here.
        "pidfile": str(settings.pid_file),
        # A worker leaves after this many requests (jittered so workers do not all leave
        # together) and after worker_max_age seconds: what it held of a submission goes
        # with its process (SECURITY.md, "memory residue").
        "max_requests": settings.worker_max_requests,
        "max_requests_jitter": max(1, settings.worker_max_requests // 10),
    }


@dataclass(frozen=True)
class WorkerSetup:
    """gunicorn's ``post_worker_init`` hook: the read bounds, and retirement by age.

    The worker learns how long a request may take to arrive and how large a body it
    waits for (cli.gunicorn_worker), and takes the hashing slots all workers share
    (anonsign.web.capacity). And it retires ``max_age`` seconds (±10%) on:
    recycling by request count alone would let a quiet site keep one submission in a
    worker's memory for days; the worker finishes what it is serving, then exits and
    gunicorn starts a fresh one. (A value, not a closure, so that ``serve`` and
    ``deploy/gunicorn.conf.py`` can be checked to configure the same thing.)
    """

    max_age: float
    read_seconds: int = 10
    body_limit: int = 64 * 1024
    #: The hashing slots all workers share; made before they fork.
    gate: SharedGate | None = field(default=None, compare=False)

    def __call__(self, worker: Any) -> None:
        worker.read_seconds = self.read_seconds
        worker.body_limit = self.body_limit
        if self.gate is not None:
            use_shared_gate(self.gate)
        if self.max_age <= 0:
            return

        def retire() -> None:
            worker.alive = False
            # Wake the worker's wait on its listeners (or its event loop) so it notices now.
            os.kill(os.getpid(), signal.SIGWINCH)

        age = self.max_age * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not a secret
        timer = threading.Timer(age, retire)
        timer.daemon = True
        timer.start()


def _open_and_check(settings: Settings, workers: int) -> None:
    from anonsign.service import Service
    from anonsign.storage.migrate import require_current

    # A memory budget that cannot hold one hash per worker is refused here, with its line.
    Capacity.for_settings(settings)
    service = Service.open(settings)  # InstanceLocked says how to unlock
    try:
        require_current(service.db.engine)
        # Every host's workers at their busiest must fit PostgreSQL (storage.pool).
        pool = worker_settings(settings).db_pool_size
        budget = ConnectionBudget(settings.host_count, workers, pool)
        check_connection_budget(service.db.engine, budget)
    finally:
        service.close_connections()


def check_ready(settings: Settings, workers: int | None = None) -> None:
    """Fail early, with one line, unless the instance is initialized, its schema current,
    and PostgreSQL can hold the connections of ``workers`` (default: the setting's) on
    every host.

    The check opens the instance (its keys, its database) in a child process, so the
    process that goes on to serve never holds a secret.
    """
    run_isolated(_open_and_check, settings, workers or settings.workers)
    if uses_dev_master_key(settings):
        sys.stderr.write(
            "WARNING: this instance keeps a DEV-ONLY master key in clear on disk "
            f"({settings.dev_master_key_file}). Never use it for a real petition.\n"
        )


def load_app(settings: Settings | None = None) -> Flask:
    """The app as a worker serves it, logging through the privacy filter from the start."""
    from anonsign.app import create_app

    configure_logging(logging.WARNING)
    return create_app(worker_settings(settings or load_settings()))


class AnonsignServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return load_app(self.settings)


class AlreadyServing(AnonsignError):
    """A server is already running for this instance; stop it first (one per instance)."""


def run_server(
    settings: Settings, *, bind: str, workers: int, announce: Callable[[], None] | None = None
) -> None:
    """Check the instance is ready, call ``announce`` (where it listens), serve until stopped."""
    from anonsign.server_control import find_server

    running = find_server(settings)
    if running is not None:
        # One server per instance: close and lock must reach every process that serves.
        raise AlreadyServing(
            f"A server is already running for this instance (process {running.pid}); "
            "stop it first: one server serves one instance."
        )
    check_ready(settings, workers)
    if bind.startswith("unix:") is False and not bind.startswith(("127.", "localhost", "[::1]")):
        logging.getLogger("anonsign").warning(
            "listening on a non-loopback address: put the service behind Tor, not in the open"
        )
    if announce is not None:
        announce()
    try:
        AnonsignServer(settings, gunicorn_options(settings, bind, workers)).run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise AnonsignError(
                f"The server stopped with an error (exit {exc.code}); is {bind} already in use?"
            ) from None
