"""A real ``anonsign`` server in a subprocess, and a cookie-keeping client for it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import CookieJar
from pathlib import Path

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
def running(
    args: list[str], env: Mapping[str, str], port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``anonsign ARGS`` in its own process group until the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ANONSIGN, *args],
            env={**os.environ, **LIVE_DEFAULTS, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, process)
            yield process
        finally:
            stop_group(process)


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
