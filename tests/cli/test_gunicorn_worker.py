"""anonsign's gunicorn worker: gunicorn's statuses, our headers, nothing quoted back."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from gunicorn import util
from gunicorn.http.errors import (
    ChunkMissingTerminator,
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidProxyLine,
    InvalidRequestLine,
    InvalidRequestMethod,
    InvalidResponseHeader,
    LimitRequestHeaders,
    LimitRequestLine,
    ObsoleteFolding,
    UnsupportedTransferCoding,
)
from gunicorn.workers.gthread import ThreadWorker

from anonsign.cli import gunicorn_worker
from anonsign.cli.gunicorn_app import gunicorn_options
from anonsign.cli.gunicorn_worker import (
    BufferingThreadWorker,
    SyncWorkerWithHeaders,
    bare_answer,
    status_for,
)
from anonsign.config import load_settings
from anonsign.web.guard import BodyReadInterrupted
from tests.web.test_headers import EXPECTED_HEADERS


@pytest.mark.parametrize(
    ("error", "request_read", "status"),
    [
        (InvalidRequestLine("GARBAGE"), False, 400),
        (InvalidRequestMethod("G@T"), False, 400),
        (InvalidHTTPVersion((9, 9)), False, 400),
        (InvalidHeader("CONTENT-LENGTH"), False, 400),
        (InvalidHeaderName("X Q"), False, 400),
        (ObsoleteFolding("X-Q"), False, 400),
        (InvalidProxyLine("PROXY"), False, 400),
        (ChunkMissingTerminator(b"XY"), True, 400),
        # gunicorn says 501; a client's request is never our error.
        (UnsupportedTransferCoding("qqzv"), False, 400),
        (ForbiddenProxyRequest("x"), False, 403),
        (LimitRequestLine(5000, 2048), False, 414),
        (ExpectationFailed("qqzv"), False, 417),
        (LimitRequestHeaders("limit request headers fields"), False, 431),
        # gunicorn's timeout abort: still reading the head, or the body (web.guard).
        (SystemExit(1), False, 408),
        (BodyReadInterrupted(1), True, 408),
        # The app's or the operator's fault: a 500, still with our headers.
        (SystemExit(1), True, 500),
        (InvalidResponseHeader("X-Bad\r\n"), True, 500),
        (ConfigurationProblem("SCRIPT_NAME"), True, 500),
        (RuntimeError("a bug"), True, 500),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_status_for_each_failure(error: BaseException, request_read: bool, status: int) -> None:
    assert status_for(error, request_read=request_read) == status


@pytest.mark.parametrize("status", [400, 403, 408, 413, 414, 417, 431, 500])
def test_bare_answer_is_complete_and_carries_every_header(status: int) -> None:
    raw = bare_answer(status)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} ")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    for name, value in EXPECTED_HEADERS.items():
        assert headers[name] == value
    assert headers["Content-Length"] == str(len(body))
    assert headers["Connection"] == "close"
    assert body.startswith(b"<!doctype html>")


def test_handle_error_writes_our_answer_and_quotes_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    written: list[bytes] = []
    monkeypatch.setattr(util, "write_nonblock", lambda sock, data: written.append(data))
    worker = SyncWorkerWithHeaders.__new__(SyncWorkerWithHeaders)
    worker.log = logging.getLogger("gunicorn.error")
    with caplog.at_level(logging.WARNING, "gunicorn.error"):
        worker.handle_error(None, object(), ("", -1), InvalidRequestLine("GET /qqzv"))
    assert written == [bare_answer(400)]
    assert "InvalidRequestLine" in caplog.text
    assert "qqzv" not in caplog.text


def test_serve_uses_the_buffering_thread_worker_with_headers(tmp_path: Path) -> None:
    settings = load_settings({"ANONSIGN_INSTANCE": str(tmp_path), "ANONSIGN_THREADS": "6"})
    options = gunicorn_options(settings, "127.0.0.1:0", 1)
    loaded = util.load_class(options["worker_class"])
    assert loaded is BufferingThreadWorker
    assert issubclass(loaded, ThreadWorker)
    assert options["threads"] == 6
    # gunicorn swaps any "...SyncWorker" for its threaded worker when threads > 1,
    # which would drop the headers without a word.
    assert not options["worker_class"].endswith("SyncWorker")
    assert gunicorn_worker.HeadersOnErrors in loaded.__mro__
    # The worker learns its read bounds from the settings, in every worker process.
    setup = options["post_worker_init"]
    assert (setup.read_seconds, setup.body_limit) == (10, settings.max_content_length)
