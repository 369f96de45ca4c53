"""A real ``anonsign`` server in a subprocess, and a cookie-keeping client for it."""

from __future__ import annotations

import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

ANONSIGN = str(Path(sys.executable).parent / "anonsign")
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')

#: Servers started here post forms the moment they have the page (``Browser.sign``), so
#: the two-second minimum before a form is accepted is off unless a test sets it
#: (tests/browser/test_no_js.py runs with the real one, and waits like a person).
LIVE_DEFAULTS = {"ANONSIGN_FORM_MIN_SECONDS": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not listen on port {port} within {timeout} s")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started with ``start_new_session``: its whole process group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def _process_group(
    args: list[str],
    env: Mapping[str, str],
    log: Path,
    ready: Callable[[subprocess.Popen[bytes]], None],
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``anonsign ARGS`` in its own process group, once ``ready`` returns, until the
    block ends (then the whole group is stopped)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ANONSIGN, *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            ready(process)
            yield process
        finally:
            stop_group(process)


@contextmanager
def running(
    args: list[str], env: Mapping[str, str], port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``anonsign ARGS`` in its own process group until the block ends."""
    full = {**os.environ, **LIVE_DEFAULTS, **env}
    with _process_group(args, full, log, lambda p: wait_for_port(port, p)) as process:
        yield process


class Browser:
    """Just enough of a browser without JavaScript: cookies, forms, headers."""

    def __init__(self, base: str, headers: Mapping[str, str] | None = None) -> None:
        self.base = base
        self.headers = dict(headers or {})
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def request(self, path: str, form: Mapping[str, str] | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=self.headers)
        try:
            with self.opener.open(req, timeout=30) as answer:
                return answer.status, answer.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8")

    def sign(self, slug: str, identifier: str, contact: str = "") -> tuple[int, str]:
        status, page = self.request(f"/p/{slug}")
        assert status == 200, status
        match = CSRF.search(page)
        assert match, "no CSRF token on the petition page"
        form = {"csrf_token": match.group(1), "identifier": identifier, "consent": "y"}
        # The single-use form token and the empty honeypot, as a browser posts them (a
        # checkout from before them has neither: bench/sign_throughput.py --baseline).
        token = FORM_TOKEN.search(page)
        if token:
            form |= {"form_token": token.group(1), "website": ""}
        if contact:
            form["contact"] = contact
        return self.request(f"/p/{slug}/sign", form)


# --- a server on a unix socket, reached the way tor reaches it --------------------------


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early with status {process.returncode}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(path))
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not listen on {path} within {timeout} s")


@contextmanager
def serving_on_socket(
    env: Mapping[str, str], sock: Path, log: Path, *, without: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """``anonsign serve --socket SOCK`` in its own process group until the block ends,
    with ``env`` added to this environment and the variables ``without`` removed."""
    full = {**LIVE_DEFAULTS, **{k: v for k, v in os.environ.items() if k not in without}}
    args = ["serve", "--socket", str(sock)]
    with _process_group(args, {**full, **env}, log, lambda p: wait_for_socket(sock, p)) as process:
        yield process


#: tor(1), HiddenServiceExportCircuitID: the circuit id is the last 32 bits of this /96.
CIRCUIT_PREFIX = "fc00:dead:beef:4dad::"


def circuit_address(circuit_id: int) -> str:
    """The source address tor writes in its PROXY line for one circuit."""
    return f"{CIRCUIT_PREFIX}{circuit_id >> 16:x}:{circuit_id & 0xFFFF:x}"


def proxy_line(source: str, source_port: int = 65535, dest_port: int = 80) -> bytes:
    """A PROXY v1 line as tor's ``HiddenServiceExportCircuitID haproxy`` writes it."""
    family = "TCP6" if ":" in source else "TCP4"
    dest = "::1" if family == "TCP6" else "127.0.0.1"
    return f"PROXY {family} {source} {dest} {source_port} {dest_port}\r\n".encode()


class Circuit:
    """One Tor circuit to a server on a unix socket: every connection (stream) starts
    with tor's PROXY line for ``source``; cookies are kept like a browser keeps them."""

    def __init__(self, sock: Path, source: str) -> None:
        self.sock = sock
        self.source = source
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        body = urllib.parse.urlencode(form).encode() if form is not None else b""
        head = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
        if self.cookies:
            head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if form is not None:
            head += [
                "Content-Type: application/x-www-form-urlencoded",
                f"Content-Length: {len(body)}",
            ]
        raw = "\r\n".join(head).encode() + b"\r\n\r\n" + body
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(str(self.sock))
            conn.sendall(proxy_line(self.source) + raw)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head_bytes, _, content = answer.partition(b"\r\n\r\n")
        status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
            if name.strip().lower() == "set-cookie":
                cookie = value.strip().split(";", 1)[0]
                key, _, val = cookie.partition("=")
                self.cookies[key] = val
        return int(status_line.split(" ")[1]), headers, content.decode("utf-8", "replace")

    def form_token(self, slug: str) -> dict[str, str] | None:
        """Open the petition page; its hidden fields (CSRF token, single-use form token,
        empty honeypot), or None when the page was refused."""
        status, _headers, page = self.request("GET", f"/p/{slug}")
        match = CSRF.search(page)
        if status != 200 or not match:
            return None
        fields = {"csrf_token": match.group(1)}
        token = FORM_TOKEN.search(page)
        if token:
            fields |= {"form_token": token.group(1), "website": ""}
        return fields

    def post_sign(
        self, slug: str, fields: dict[str, str], identifier: str
    ) -> tuple[int, dict[str, str], str]:
        form = {**fields, "identifier": identifier, "consent": "y"}
        return self.request("POST", f"/p/{slug}/sign", form)

    def sign(self, slug: str, identifier: str) -> int:
        token = self.form_token(slug)
        assert token, "the petition page was refused"
        return self.post_sign(slug, token, identifier)[0]


class TorStandIn:
    """An HTTP proxy in tor's place (and torsocks'), for clients that honour ``http_proxy``.

    Every request, whatever ``.onion`` host it names, goes to the server's unix socket as
    tor delivers a stream: after the PROXY line tor writes for a circuit (a new one per
    connection), in origin form, with ``Connection: close``. So a command run as an
    auditor runs it over Tor (``anonsign audit verify http://xyz.onion/p/...``) reaches a
    local server exactly as written.
    """

    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self._circuits = iter(range(1, 1 << 32))
        stand_in = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                stand_in._relay(self.rfile, self.wfile)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _relay(self, rfile: Any, wfile: Any) -> None:
        request_line = rfile.readline(4096).decode("latin-1")
        method, target, version = request_line.split()
        path = urllib.parse.urlsplit(target)
        origin_form = (path.path or "/") + (f"?{path.query}" if path.query else "")
        headers = []
        while (line := rfile.readline(8192).decode("latin-1")) not in ("\r\n", "\n", ""):
            name = line.split(":", 1)[0].strip().lower()
            if name not in {"connection", "proxy-connection"}:
                headers.append(line.rstrip("\r\n"))
        head = [f"{method} {origin_form} {version}", *headers, "Connection: close"]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        circuit = circuit_address(next(self._circuits))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(60)
            conn.connect(str(self.sock))
            conn.sendall(proxy_line(circuit) + raw)
            while chunk := conn.recv(65536):
                wfile.write(chunk)

    def __enter__(self) -> TorStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- what a server's processes use ---------------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    """Every process of a server started in its own process group."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def rss_kib(pids: list[int]) -> int:
    """Resident memory of ``pids`` together (KiB), as the kernel counts it now."""
    total = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(x.split()[1]) for x in lines if x.startswith("VmRSS:")), 0)
    return total
