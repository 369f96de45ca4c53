"""gunicorn settings for anonsign, for operators who run gunicorn themselves.

    /opt/anonsign/venv/bin/gunicorn --config /opt/anonsign/gunicorn.conf.py

``anonsign serve --socket /run/anonsign/anonsign.sock`` does exactly the same and is the
simpler choice (``anonsign.service`` uses it). Every value below comes from
``anonsign.cli.gunicorn_app.gunicorn_options``, the function ``serve`` uses, so the two
cannot drift apart; change a setting there, not here. The settings themselves come from
the same ``ANONSIGN_*`` variables (``ANONSIGN_WORKERS`` for the number of workers).
"""

from __future__ import annotations

import sys
from typing import Any

from anonsign.cli.gunicorn_app import check_ready, gunicorn_options
from anonsign.config import load_settings
from anonsign.errors import AnonsignError

#: The socket tor's ``HiddenServicePort`` forwards the onion service to (see ``torrc``).
SOCKET = "/run/anonsign/anonsign.sock"

_settings = load_settings()
_options = gunicorn_options(_settings, bind=f"unix:{SOCKET}", workers=_settings.workers)

# A unix socket and no TCP port: only tor can reach the app, and no client address exists.
bind = _options["bind"]
# The socket is 0770: the app's user and tor's group, nobody else.
umask = _options["umask"]
# No access log at all: gunicorn's format starts with the client address (%(h)s).
accesslog = _options["accesslog"]
# Errors to stderr (the journal), warnings and worse only, through anonsign's privacy
# filter, which masks anything shaped like an address, email or phone number.
errorlog = _options["errorlog"]
loglevel = _options["loglevel"]
logger_class = _options["logger_class"]
# gunicorn 25+ opens a control socket (~/.gunicorn/gunicorn.ctl) unless told not to.
control_socket_disable = _options["control_socket_disable"]
# anonsign's URLs, cookies and headers are short: a longer request line or header, or
# more headers, is abuse and gets a 400 before the app sees it.
limit_request_line = _options["limit_request_line"]
limit_request_fields = _options["limit_request_fields"]
limit_request_field_size = _options["limit_request_field_size"]
# gunicorn trusts any peer of a unix socket as a proxy, and Tor passes a client's headers
# through unchanged: honour no X-Forwarded-Proto, X-Forwarded-SSL or SCRIPT_NAME header.
secure_scheme_headers = _options["secure_scheme_headers"]
forwarder_headers = _options["forwarder_headers"]
# tor's HiddenServiceExportCircuitID haproxy (torrc) starts each stream with a PROXY v1
# line naming its circuit: the app's per-circuit rate limit keys on it (hashed under a key
# that lives only in memory). Read on the unix socket only, where tor connects.
proxy_protocol = _options["proxy_protocol"]
proxy_allow_ips = _options["proxy_allow_ips"]
# A signature costs one Argon2id computation; a request taking this long is stuck.
timeout = _options["timeout"]
graceful_timeout = _options["graceful_timeout"]
# gunicorn's threaded worker with two changes: a request is received whole in the
# worker's event loop before a thread sees it, so slow clients hold no thread (and each
# must arrive within ANONSIGN_REQUEST_READ_SECONDS, else 408); and the answers gunicorn
# writes itself carry the security headers and quote nothing back. How many signatures
# hash at once is bounded by the app's hashing gate, sized from ANONSIGN_MEMORY_BUDGET_MIB.
workers = _options["workers"]
worker_class = _options["worker_class"]
threads = _options["threads"]
worker_connections = _options["worker_connections"]
keepalive = _options["keepalive"]
proc_name = _options["proc_name"]
# `anonsign petition close`, `emergency-close` and `lock` find the server by this file.
# (None while the instance folder is missing: on_starting below then says what to do,
# instead of gunicorn's own complaint that it cannot write the file.)
pidfile = _options["pidfile"] if _settings.instance_path.is_dir() else None
# Workers are replaced after a bounded number of requests and a bounded age, so what
# one held of a submission does not stay long in a live process (SECURITY.md).
max_requests = _options["max_requests"]
max_requests_jitter = _options["max_requests_jitter"]
post_worker_init = _options["post_worker_init"]

# The app, built in each worker with logging through the privacy filter from the start.
wsgi_app = "anonsign.wsgi:app"


def on_starting(server: Any) -> None:
    """Refuse to start unless ``anonsign init`` has been run, as ``anonsign serve`` does."""
    try:
        check_ready(_settings)
    except AnonsignError as exc:
        sys.exit(f"ERROR: {exc.message}")
