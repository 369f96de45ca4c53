"""Whether a whole request has arrived, decided by gunicorn's own parser."""

from __future__ import annotations

from typing import Any

import pytest
from gunicorn.config import Config

from anonsign.cli.request_buffer import HEAD_LIMIT, Verdict, examine

BODY_LIMIT = 64 * 1024
FORM = b"csrf_token=abc&identifier=%2B99365123456&consent=y"
HEAD = (
    b"POST /p/tm/sign HTTP/1.1\r\nHost: x.onion\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n"
)
PROXY = b"PROXY TCP6 fc00:dead:beef:4dad::0:1 ::1 1 80\r\n"


def config(proxy: str = "off") -> Any:
    cfg = Config()
    cfg.set("proxy_protocol", proxy)
    return cfg


def posted(body: bytes = FORM, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return HEAD + b"Content-Length: %d\r\n\r\n" % size + body


def chunked(*chunks: bytes, end: bool = True) -> bytes:
    out = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    for chunk in chunks:
        out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    return out + (b"0\r\n\r\n" if end else b"")


def verdict(data: bytes, cfg: Any = None, req_number: int = 1) -> Verdict:
    return examine(data, cfg or config(), ("127.0.0.1", 5000), req_number, BODY_LIMIT)


def test_a_get_is_whole_once_its_head_ends() -> None:
    get = b"GET /p/tm HTTP/1.1\r\nHost: x.onion\r\n\r\n"
    assert verdict(get) is Verdict.COMPLETE
    for cut in range(len(get)):
        assert verdict(get[:cut]) is Verdict.INCOMPLETE, cut


def test_a_post_is_whole_only_with_its_whole_body() -> None:
    whole = posted()
    assert verdict(whole) is Verdict.COMPLETE
    assert verdict(whole[:-1]) is Verdict.INCOMPLETE
    assert verdict(whole[: len(whole) - len(FORM)]) is Verdict.INCOMPLETE
    # Bytes of the next request behind it (pipelined) change nothing.
    assert verdict(whole + b"GET / HT") is Verdict.COMPLETE


def test_a_chunked_body_is_whole_at_its_last_chunk() -> None:
    whole = chunked(FORM[:10], FORM[10:])
    assert verdict(whole) is Verdict.COMPLETE
    assert verdict(chunked(FORM[:10], FORM[10:], end=False)) is Verdict.INCOMPLETE
    assert verdict(whole[:-3]) is Verdict.INCOMPLETE


@pytest.mark.parametrize(
    "malformed",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        HEAD + b"Content-Length: zz\r\n\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n",
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n",
    ],
    ids=["request line", "version", "length", "chunk size", "long line"],
)
def test_a_malformed_request_goes_on_at_once_to_be_refused(malformed: bytes) -> None:
    # Waiting for more would be what a slow client wants; the thread's parse refuses it.
    assert verdict(malformed) is Verdict.COMPLETE


def test_a_body_over_the_app_limit_is_not_waited_for() -> None:
    # Declared too long: the app refuses it from Content-Length (413), reading nothing.
    assert verdict(posted(b"", length=BODY_LIMIT + 1)) is Verdict.COMPLETE
    # Chunked and still coming past the limit: answered by the event loop.
    big = chunked(*[b"x" * 4096] * (BODY_LIMIT // 4096 + 5), end=False)
    assert verdict(big) is Verdict.BODY_TOO_LARGE


def test_an_endless_head_is_cut_off() -> None:
    endless = b"GET / HTTP/1.1\r\n" + b"X-Q: a\r\n" * (HEAD_LIMIT // 8 + 1)
    assert verdict(endless) is Verdict.HEAD_TOO_LARGE


def test_tor_s_proxy_line_is_read_on_the_first_request_only() -> None:
    cfg = config("v1")
    assert verdict(PROXY + posted(), cfg) is Verdict.COMPLETE
    assert verdict(PROXY + posted()[:-1], cfg) is Verdict.INCOMPLETE
    assert verdict(PROXY[:20], cfg) is Verdict.INCOMPLETE
    # A kept-alive connection's next request has no PROXY line.
    assert verdict(posted(), cfg, req_number=2) is Verdict.COMPLETE
