"""Hostile bytes sent to a real ``anonsign serve``: a 4xx with every header, and it stays up.

The in-process tests (test_hostile_input.py) cannot reach what gunicorn parses and answers
itself -- the request line, header limits, Content-Length, chunked decoding -- so these
send exact bytes over a raw socket to the default configuration (no TRUSTED_HOSTS, one
sync worker). After each exchange the same server must still answer a normal page, and
its log must show no 500 (``unexpected error``, ``Error handling request``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsign.config import load_settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.instance import init_instance
from anonsign.service import Service
from tests.conftest import CHEAP_ARGON2, make_petition
from tests.live import free_port, running, stop_group, wait_for_port
from tests.web.test_headers import EXPECTED_HEADERS

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile-live")]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SLUG = "free-press"
SIGN = f"/p/{SLUG}/sign".encode()
#: Log lines that only a 500 writes (web.errors, cli.gunicorn_worker).
FIVE_HUNDRED_MARKS = ("unexpected error", "Error handling request")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def parse(raw: bytes) -> Answer:
    """The final answer in ``raw``, past any interim ``100 Continue``."""
    while True:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            raw = rest
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Answer(status, headers, rest)


def exchange(port: int, data: bytes, *, half_close: bool = True, timeout: float = 30) -> Answer:
    """Send exactly ``data``; with ``half_close`` the server then sees the end of input."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused before reading everything; its answer is waiting
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    assert raw, "the server closed the connection without an answer"
    return parse(raw)


def assert_refused_with_headers(answer: Answer, *statuses: int) -> None:
    assert answer.status in statuses, (answer.status, answer.body[:200])
    for name, value in EXPECTED_HEADERS.items():
        assert answer.headers.get(name.lower()) == value, (answer.status, name)
    assert b"Traceback" not in answer.body
    assert b'File "' not in answer.body


def assert_still_serving(server: Server) -> None:
    assert server.process.poll() is None, "the server exited"
    page = exchange(server.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert page.status == 200
    log = server.log.read_text(errors="replace")
    assert not [mark for mark in FIVE_HUNDRED_MARKS if mark in log], log[-2000:]


@pytest.fixture(scope="module")
def live_env(
    tmp_path_factory: pytest.TempPathFactory, organizer: OrganizerSecretKey
) -> dict[str, str]:
    """An initialized instance with one open petition, as environment for a server."""
    folder = tmp_path_factory.mktemp("hostile-live") / "instance"
    env = {
        "ANONSIGN_INSTANCE": str(folder),
        "ANONSIGN_DATABASE_URL": f"sqlite:///{folder / 'anonsign.db'}",
        "ANONSIGN_WORKERS": "1",
        "ANONSIGN_PUBLISHER_PERIOD": "0",
        # The default configuration the attack was found on: any Host is served.
        "ANONSIGN_TRUSTED_HOSTS": "",
        "ANONSIGN_ONION_ADDRESS": "",
    }
    settings = load_settings(env, argon2=CHEAP_ARGON2)
    init_instance(settings, dev=True)
    service = Service.open(settings, migrate=True)
    try:
        make_petition(service, organizer, SLUG)
    finally:
        service.close_connections()
    return env


@pytest.fixture(scope="module")
def server(live_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("hostile-live-log") / "server.log"
    with running(["serve", "--port", str(port)], live_env, port, log) as process:
        yield Server(port, process, log)


def post(body: bytes, *headers: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return (
        b"POST " + SIGN + b" HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n" + head + b"\r\n" + body
    )


def get(target: bytes = b"/", *headers: bytes, host: bytes = b"localhost") -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + head + b"\r\n"


CHUNKED = b"Transfer-Encoding: chunked"

#: (request, the statuses it may get). Host and body cases are answered by the app;
#: the rest by gunicorn's parser, through anonsign's worker (cli.gunicorn_worker).
HOSTILE = {
    # Host labels Werkzeug cannot IDNA-encode (the reported 500s).
    "long-label-host": (get(host=b"a" * 64 + b".onion"), {400}),
    "empty-label-host": (get(host=b"a..b"), {400}),
    "long-label-host-on-a-post": (
        post(b"identifier=a").replace(b"Host: localhost", b"Host: " + b"b" * 70),
        {400},
    ),
    "dot-host": (get(host=b"."), {400}),
    # Chunked bodies gunicorn decodes while the app reads them (the reported 500).
    "bad-chunk-size": (post(b"ZZZ\r\nabc\r\n0\r\n\r\n", CHUNKED), {400}),
    "truncated-chunked-body": (post(b"10\r\nidentifier", CHUNKED), {400}),
    "chunk-without-terminator": (post(b"3\r\nabcXY0\r\n\r\n", CHUNKED), {400}),
    "bad-chunk-extension": (post(b'3;a="\r\nabc\r\n0\r\n\r\n', CHUNKED), {400}),
    "chunked-body-over-the-limit": (
        post(b"10000\r\n" + b"a" * 0x10000 + b"\r\n" * 2 + b"10000\r\n", CHUNKED),
        {400, 413},  # 413, or the form parser gives up first and the token is missing
    ),
    # Length trouble.
    "short-body": (post(b"identifier=a", b"Content-Length: 500"), {400}),
    "content-length-over-the-limit": (post(b"", b"Content-Length: 10000000"), {413}),
    "content-length-not-a-number": (post(b"", b"Content-Length: abc"), {400}),
    "negative-content-length": (post(b"", b"Content-Length: -1"), {400}),
    "two-content-lengths": (post(b"a", b"Content-Length: 1", b"Content-Length: 2"), {400}),
    "content-length-and-chunked": (post(b"0\r\n\r\n", b"Content-Length: 5", CHUNKED), {400}),
    "unknown-transfer-coding": (post(b"", b"Transfer-Encoding: qqzv"), {400}),
    # The request line.
    "bad-request-line": (b"GARBAGE-qqzv\r\n\r\n", {400}),
    "bad-method": (b"G@T / HTTP/1.1\r\nHost: localhost\r\n\r\n", {400}),
    "bad-version": (b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n", {400}),
    "http-0.9": (b"GET /\r\n\r\n", {400}),
    "nul-in-the-path": (get(b"/p/\x00qqzv"), {400}),
    "raw-non-ascii-in-the-query": (get(b"/?lang=\xff\x80"), {400}),
    "too-long-uri": (get(b"/p/" + b"q" * 5000), {414}),
    # Headers.
    "too-many-headers": (get(b"/", *[b"X-Q%d: a" % i for i in range(60)]), {431}),
    "too-large-header": (get(b"/", b"X-Q: " + b"q" * 5000), {431}),
    "nul-in-a-header": (get(b"/", b"X-Q: a\x00b"), {400}),
    "obsolete-folding": (get(b"/", b"X-Q: a", b" folded"), {400}),
    "header-name-with-space": (get(b"/", b"X Q: a"), {400}),
    "bad-expect": (post(b"", b"Expect: qqzv", b"Content-Length: 0"), {417}),
    "malformed-origin": (post(b"identifier=a", b"Origin: http://[", b"Content-Length: 12"), {400}),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_request_gets_a_4xx_with_the_headers_and_the_server_stays_up(
    server: Server, name: str
) -> None:
    request, statuses = HOSTILE[name]
    answer = exchange(server.port, request)
    assert_refused_with_headers(answer, *statuses)
    # gunicorn's own page quoted the rejected request line back; ours quotes nothing.
    assert b"qqzv" not in answer.body
    assert_still_serving(server)


def test_gunicorns_own_answer_is_a_short_page_that_closes_the_connection(server: Server) -> None:
    answer = exchange(server.port, b"GARBAGE\r\n\r\n")
    assert answer.status == 400
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert b"Please go back and try again." in answer.body
    assert "server" not in answer.headers


# Request lines and Host headers as raw bytes, CR and LF aside (the cases above send them).
line_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=80, deadline=None)
@given(
    method=st.one_of(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS"]), line_bytes),
    target=st.one_of(
        line_bytes.map(lambda b: b"/" + b),
        st.sampled_from([b"/", SIGN, b"/p/" + SLUG.encode(), b"/static/style.css", b"*"]),
        line_bytes,
    ),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2", b"http/1.1", b""]),
    host=st.one_of(line_bytes, st.sampled_from([b"localhost", b"a..b", b"a" * 64 + b".b"])),
)
def test_any_request_line_and_host_over_the_wire_get_an_answer_below_500(
    server: Server, method: bytes, target: bytes, version: bytes, host: bytes
) -> None:
    request = method + b" " + target + b" " + version + b"\r\nHost: " + host + b"\r\n\r\n"
    answer = exchange(server.port, request)
    assert_refused_with_headers(answer, *range(200, 500))
    assert server.process.poll() is None


# --- a client too slow for the sync worker -----------------------------------------------------


@pytest.fixture(scope="module")
def impatient_server(
    live_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """gunicorn from deploy/gunicorn.conf.py, on TCP, giving a request 2 seconds to arrive."""
    port = free_port()
    log = tmp_path_factory.mktemp("hostile-slow") / "gunicorn.log"
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    args = [gunicorn, "--config", str(DEPLOY / "gunicorn.conf.py")]
    args += ["--bind", f"127.0.0.1:{port}"]
    # Its own pid file: the module's other server serves the same instance meanwhile.
    args += ["--pid", str(log.with_name("gunicorn.pid"))]
    with log.open("wb") as out:
        process = subprocess.Popen(
            args,
            env={**os.environ, **live_env, "ANONSIGN_REQUEST_READ_SECONDS": "2"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, process)
            yield Server(port, process, log)
        finally:
            stop_group(process)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"",  # connects, then says nothing
        b"GET / HTTP/1.1\r\nHost: localhost\r\n",  # half a head
        post(b"identifier=", b"Content-Length: 500"),  # half a body
        post(b"20\r\nidentifier=", CHUNKED),  # half a chunk
    ],
    ids=["silent", "half-head", "half-body", "half-chunk"],
)
def test_a_client_too_slow_for_the_worker_gets_408_with_the_headers(
    impatient_server: Server, request_bytes: bytes
) -> None:
    # The event loop's deadline for a whole request (cli.gunicorn_worker); under the sync
    # worker it was gunicorn aborting the worker, whose answer was a bare 500.
    started = time.monotonic()
    answer = exchange(impatient_server.port, request_bytes, half_close=False)
    assert time.monotonic() - started >= 1.5  # the deadline, not a parse error
    assert_refused_with_headers(answer, 408)
    assert "too slow" in impatient_server.log.read_text()
    # No worker was held meanwhile, and the next client is served.
    assert_still_serving(impatient_server)
