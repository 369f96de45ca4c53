"""gunicorn's sync worker, with its own error answers carrying our headers and quoting nothing.

gunicorn answers by itself, before the app sees the request, whenever it cannot parse one:
a malformed request line or method, a NUL in the path, an unknown HTTP version, a URI
over ``limit_request_line`` (414), too many or too large headers (431), a bad
``Content-Length`` or ``Transfer-Encoding``, an ``Expect`` other than ``100-continue``
(417); and with a 500 for anything that escapes the app, including a worker it aborts
because a client held it past the timeout. Its page (``gunicorn.util.write_error``) has
none of the headers of :mod:`anonsign.web.headers` and quotes the rejected request line
back into the answer.

The hook gunicorn offers is the worker's ``handle_error``. :class:`HeadersOnErrors`
overrides it and nothing else: the same statuses (except that no client gets a 5xx for
what it sent), a fixed short page with every security header, a log line naming only the
exception's type. The worker model stays sync -- one request per process, so Argon2id
memory stays bounded -- and :class:`SyncWorkerWithHeaders` is gunicorn's ``SyncWorker``
with the mixin; a threaded worker later takes the same mixin.

Its name must not end in ``SyncWorker``: gunicorn silently swaps any such class for its
threaded worker when ``threads > 1``, which would drop these headers unseen.
"""

from __future__ import annotations

import ssl
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
)
from gunicorn.workers.sync import SyncWorker

from anonsign.web.guard import BodyReadInterrupted
from anonsign.web.headers import SECURITY_HEADERS

#: One sentence per status, in English: no session or language choice exists yet when
#: gunicorn refuses a request, and Accept-Language is never read (Tor Browser sends en-US).
MESSAGES = {
    400: "This request was not understood. Please go back and try again.",
    403: "This is not allowed. Please go back to the petition page.",
    408: "The request took too long to arrive. Please try again.",
    414: "This address is too long. Please open the page from a link on this site.",
    417: "This request was not understood. Please go back and try again.",
    431: "This request carried too much. Please go back and try again.",
    500: "Something went wrong on our side. Nothing you entered was kept. Please try again.",
}


def status_for(exc: BaseException, *, request_read: bool) -> int:
    """The status gunicorn's failure ``exc`` deserves; ``request_read``: the head was parsed."""
    if isinstance(exc, BodyReadInterrupted) or (isinstance(exc, SystemExit) and not request_read):
        # The timeout abort caught the worker still waiting for the client's bytes: a
        # slow-loris client, not our fault.
        return 408
    if isinstance(exc, InvalidResponseHeader | InvalidResponseHeaderName | ConfigurationProblem):
        # A header the app tried to send, or a SCRIPT_NAME set by the operator.
        return 500
    if isinstance(exc, LimitRequestLine):
        return 414
    if isinstance(exc, LimitRequestHeaders):
        return 431
    if isinstance(exc, ExpectationFailed):
        return 417
    if isinstance(exc, ForbiddenProxyRequest):
        return 403
    if isinstance(exc, ParseException | ssl.SSLError):
        # gunicorn answers an unknown Transfer-Encoding with 501; what a client sent is
        # never a server error here, so it is a 400 like every other malformed request.
        return 400
    return 500


def bare_answer(status: int) -> bytes:
    """A complete HTTP answer: the security headers, a one-sentence page, connection closed."""
    phrase = HTTPStatus(status).phrase
    message = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{status} {phrase}</title></head>\n"
        f"<body><h1>{phrase}</h1><p>{message}</p></body></html>\n"
    ).encode()
    headers = {
        **SECURITY_HEADERS,
        "Content-Type": "text/html; charset=utf-8",
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    head = f"HTTP/1.1 {status} {phrase}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode("latin-1") + body


class HeadersOnErrors:
    """Replaces gunicorn's ``Worker.handle_error``: same statuses, our headers, no echo."""

    log: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status = status_for(exc, request_read=req is not None)
        if status == 500:
            # The filter (anonsign.logs) keeps the exception's type, not its message.
            self.log.exception("Error handling request")
        elif status == 408:
            self.log.warning("A client was too slow to send its request (worker timeout).")
        else:
            # gunicorn's own line quotes the request; the type is enough to see an attack.
            self.log.warning("Refused a malformed request (%s).", type(exc).__name__)
        try:
            util.write_nonblock(client, bare_answer(status))
        except Exception:
            self.log.debug("Failed to send error message.")


class SyncWorkerWithHeaders(HeadersOnErrors, SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker whose own error answers carry the security headers."""
