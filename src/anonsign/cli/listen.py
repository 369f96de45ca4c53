"""Where ``serve`` and ``demo`` listen: checked before gunicorn starts, then said once.

gunicorn, given an address another program holds, retries five times and writes eleven
log lines before it gives up; an organizer over SSH reads that as a crash. So the
address is tried here first and a taken one is one ``ERROR:`` line. And gunicorn at
anonsign's log level prints nothing when it starts, so this module writes the one line
that says where the server listens and how to stop it.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from anonsign.errors import AnonsignError


class AddressInUse(AnonsignError):
    """Another program already listens on this address; stop it or choose another."""


def check_tcp_free(host: str, port: int) -> None:
    """Raise :class:`AddressInUse` (or say why not) unless ``host:port`` can be bound now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise AnonsignError(f"Cannot listen on {host!r}: {exc.strerror}.") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As gunicorn binds: a port left in TIME_WAIT by a previous server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(
                    f"{host}:{port} is already in use by another program: stop it, or choose "
                    "another port with --port (with make: make run PORT=5001)."
                ) from None
            raise AnonsignError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None


def check_socket_free(path: Path) -> None:
    """Raise :class:`AddressInUse` when a server already answers on the unix socket ``path``.

    A socket file nobody answers on is left from a server that stopped; gunicorn replaces it.
    """
    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except OSError:
            return
    raise AddressInUse(
        f"Another server already listens on the unix socket {path}: stop it first, or "
        "choose another --socket."
    )


def _workers(count: int) -> str:
    return f"{count} worker{'s' if count != 1 else ''}"


STOP_HINT = "Stop it with Ctrl-C here, or with `anonsign lock` from another shell."


def listening_line(*, url: str | None = None, socket_path: Path | None = None, workers: int) -> str:
    """The one line ``serve`` prints once the instance is ready to be served."""
    if socket_path is not None:
        where = f"the unix socket {socket_path.resolve()} (for tor's onion service)"
    else:
        where = str(url)
    return f"Listening on {where}, {_workers(workers)}. {STOP_HINT}"
