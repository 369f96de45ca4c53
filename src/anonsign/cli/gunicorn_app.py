"""Running the web app under gunicorn, configured for privacy.

No access log, the error log through :class:`anonsign.logs.PrivacyFilter`, no control
socket (gunicorn 25+ opens one by default), and tight request limits. The app is built
in each worker, after the fork, so every worker has its own database connections.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from anonsign.config import Settings
from anonsign.errors import AnonsignError
from anonsign.logs import PrivacyFilter, configure_logging

#: Argon2id dominates a signature; a request that takes longer than this is stuck.
REQUEST_TIMEOUT_SECONDS = 60


class PrivateLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with every handler behind the privacy filter."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(PrivacyFilter())

    def access(self, *args: Any, **kwargs: Any) -> None:
        """Never write an access line, whatever the configuration says."""


def gunicorn_options(settings: Settings, bind: str, workers: int) -> dict[str, Any]:
    return {
        "bind": [bind],
        "workers": workers,
        "worker_class": "sync",
        "timeout": REQUEST_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "logger_class": PrivateLogger,
        "control_socket_disable": True,
        "limit_request_line": 4094,
        "limit_request_fields": 50,
        "limit_request_field_size": 8190,
        "umask": 0o007,
        "proc_name": "anonsign",
    }


class AnonsignServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        from anonsign.app import create_app

        configure_logging(logging.WARNING)
        return create_app(self.settings)


def run_server(settings: Settings, *, bind: str, workers: int) -> None:
    """Check the instance is ready, then serve until stopped."""
    from anonsign.service import Service
    from anonsign.storage.migrate import require_current

    service = Service.open(settings)  # fails early, with one line, if not initialized
    try:
        require_current(service.db.engine)
    finally:
        service.close_connections()
    if bind.startswith("unix:") is False and not bind.startswith(("127.", "localhost", "[::1]")):
        logging.getLogger("anonsign").warning(
            "listening on a non-loopback address: put the service behind Tor, not in the open"
        )
    try:
        AnonsignServer(settings, gunicorn_options(settings, bind, workers)).run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise AnonsignError(
                f"The server stopped with an error (exit {exc.code}); is {bind} already in use?"
            ) from None
