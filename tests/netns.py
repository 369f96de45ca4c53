"""Separate network hosts on one machine: Linux network namespaces joined by veth pairs.

Each host is a namespace with its own loopback and one veth link to the root namespace
(``10.200.X.2`` inside, ``10.200.X.1`` outside), so a server in it listens on an address
of its own, and reaches nothing of the root namespace's network, its ``127.0.0.1``
included. PostgreSQL and Redis listen on the root's loopback only: hosts reach them
through unix sockets, which are file system objects and so cross namespaces
(PostgreSQL's own socket; for Redis, which has none here, :class:`UnixRelay`).

Names carry a random tag, so that parallel test workers never collide, and everything
made is removed when the block ends, whatever happened inside it.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NetHost:
    """One namespace: its name, its address, and the root namespace's end of its link."""

    namespace: str
    address: str
    gateway: str
    link: str

    def command(self, *args: str) -> list[str]:
        """``args`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *args]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def namespaces_refused() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"asprobe{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"ip netns add was refused: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


def _free_subnet() -> tuple[int, int]:
    """Two octets for a 10.x.y.0/24 that no interface of this machine uses yet."""
    used = _ip("-4", "-o", "addr").stdout
    for _ in range(100):
        second, third = random.randint(200, 249), random.randint(0, 255)  # noqa: S311
        if f" 10.{second}.{third}." not in used:
            return second, third
    raise RuntimeError("no free 10.200-249.x.0/24 subnet")


@contextmanager
def network_hosts(count: int) -> Iterator[list[NetHost]]:
    """``count`` namespaces, each linked to the root namespace, removed afterwards."""
    tag = secrets.token_hex(3)
    hosts: list[NetHost] = []
    try:
        for n in range(count):
            second, third = _free_subnet()
            host = NetHost(
                namespace=f"as{tag}{n}",
                address=f"10.{second}.{third}.2",
                gateway=f"10.{second}.{third}.1",
                link=f"as{tag}{n}r",
            )
            hosts.append(host)
            inner = f"as{tag}{n}n"
            for step in (
                ["netns", "add", host.namespace],
                ["link", "add", host.link, "type", "veth", "peer", "name", inner],
                ["link", "set", inner, "netns", host.namespace],
                ["addr", "add", f"{host.gateway}/24", "dev", host.link],
                ["link", "set", host.link, "up"],
                ["-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inner],
                ["-n", host.namespace, "link", "set", inner, "up"],
                ["-n", host.namespace, "link", "set", "lo", "up"],
            ):
                done = _ip(*step)
                if done.returncode != 0:
                    raise RuntimeError(f"ip {' '.join(step)}: {done.stderr.strip()}")
        yield hosts
    finally:
        for host in hosts:
            _ip("link", "del", host.link)  # takes its peer in the namespace with it
            _ip("netns", "del", host.namespace)


def namespace_exists(name: str) -> bool:
    return name in _ip("netns", "list").stdout.split()


class _RelayServer(socketserver.ThreadingUnixStreamServer):
    # socketserver's default backlog of 5 refuses a burst of new connections (every
    # worker of both hosts connecting at once), which the limiter reports as "storage
    # down": a relay must not be the narrow part.
    request_queue_size = 256
    daemon_threads = True


class UnixRelay:
    """A unix socket that relays each connection to a TCP address of the root namespace:
    how a host in a namespace reaches a server that listens on the root's loopback."""

    def __init__(self, path: Path, target: tuple[str, int]) -> None:
        self.path = path
        self.target = target
        relay = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                relay._relay(self.request)

        self._server = _RelayServer(str(path), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _relay(self, client: socket.socket) -> None:
        with socket.create_connection(self.target, timeout=30) as upstream:
            upstream.settimeout(None)

            def pump(source: socket.socket, sink: socket.socket) -> None:
                with suppress(OSError):
                    while data := source.recv(65536):
                        sink.sendall(data)
                with suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            back.start()
            pump(client, upstream)
            back.join(60)

    def __enter__(self) -> UnixRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        with suppress(FileNotFoundError):
            self.path.unlink()
