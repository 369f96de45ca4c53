"""Witness requests go through tor's HTTPTunnelPort when ANONSIGN_WITNESS_TUNNEL is set:
the witnesses are the only hosts the service connects to, and only through the tunnel.

The tunnel here is a real HTTP CONNECT proxy on 127.0.0.1 (tor's HTTPTunnelPort speaks
the same protocol) that records every CONNECT it is asked for, and the witness is named
by an address that does not resolve: only the proxy can reach it, as only tor can reach
an onion address.
"""

from __future__ import annotations

import os
import selectors
import socket
import socketserver
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from anonsign.config import load_settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.errors import ConfigError
from anonsign.service import Service
from tests.conftest import add_pending, make_petition
from tests.witnesses import MakeWitness, RunningWitness, witnessed_by

#: A name that cannot resolve (RFC 6761 .invalid), standing for an onion address.
UNREACHABLE = "witness-a.invalid"


class Tunnel(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy that maps ``UNREACHABLE`` to a real port."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, route: tuple[str, int]) -> None:
        self.route = route
        self.connects: list[str] = []
        super().__init__(("127.0.0.1", 0), _TunnelHandler)


class _TunnelHandler(socketserver.StreamRequestHandler):
    server: Tunnel

    def handle(self) -> None:
        request = self.rfile.readline().decode("latin-1").split()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        if len(request) < 2 or request[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        self.server.connects.append(request[1])
        host, _, port = request[1].rpartition(":")
        target = self.server.route if host == UNREACHABLE else (host, int(port))
        upstream = socket.create_connection(target, timeout=10)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        pair = {self.connection: upstream, upstream: self.connection}
        with selectors.DefaultSelector() as selector:
            for end in pair:
                selector.register(end, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select(timeout=10):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        upstream.close()
                        return
                    pair[key.fileobj].sendall(data)  # type: ignore[index]


@pytest.fixture
def tunnel_to(make_witness: MakeWitness) -> Iterator[tuple[Tunnel, RunningWitness]]:
    witness = make_witness("w1.example")
    address = urlsplit(witness.url)
    tunnel = Tunnel((address.hostname or "", address.port or 80))
    thread = threading.Thread(target=tunnel.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield tunnel, RunningWitness(witness.witness, f"http://{UNREACHABLE}:80")
    finally:
        tunnel.shutdown()
        tunnel.server_close()
        thread.join(10)


def test_witness_requests_go_through_the_tunnel_only(
    service: Service,
    organizer: OrganizerSecretKey,
    tunnel_to: tuple[Tunnel, RunningWitness],
) -> None:
    tunnel, witness = tunnel_to
    petition = make_petition(service, organizer, "tunnelled", IdentifierKind.TEXT)
    witnessed_by(service, witness, origins=[petition.log_origin])
    add_pending(service, petition.id, [os.urandom(32) for _ in range(3)])
    service.publish("tunnelled")

    direct = service.witness("tunnelled")[0]
    assert direct.line is None  # without the tunnel, the onion-like name is unreachable
    assert tunnel.connects == []

    host, port = tunnel.server_address[:2]
    service.settings = service.settings.with_overrides(witness_tunnel=(str(host), int(port)))
    service._witness_asked.clear()
    through = service.witness("tunnelled")[0]
    assert through.problem is None
    assert through.line is not None
    assert tunnel.connects == [f"{UNREACHABLE}:80"]


@pytest.mark.parametrize("value", ["9080", "localhost", ":9080", "127.0.0.1:0", "h:99999"])
def test_a_tunnel_that_is_not_host_and_port_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="WITNESS_TUNNEL must be host:port"):
        load_settings({"ANONSIGN_WITNESS_TUNNEL": value})


def test_the_tunnel_setting_loads() -> None:
    assert load_settings({"ANONSIGN_WITNESS_TUNNEL": "127.0.0.1:9080"}).witness_tunnel == (
        "127.0.0.1",
        9080,
    )
    assert load_settings({}).witness_tunnel is None
