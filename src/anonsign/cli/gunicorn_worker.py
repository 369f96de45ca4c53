"""anonsign's gunicorn worker: whole requests before threads, and gunicorn's own answers
with our headers, quoting nothing.

**Slow clients.** gunicorn's sync worker reads a request in the process that serves it:
two connections sending their headers and half a body held both workers of a two-core
host, and one Tor circuit may carry sixteen streams. gunicorn's threaded worker moves the
wait to a thread, which only moves the limit (a few hundred slow connections hold every
thread). :class:`BufferingThreadWorker` is the threaded worker with one change: a
connection's bytes are received in the worker's event loop, without blocking, until
they make a whole request (anonsign.cli.request_buffer decides with gunicorn's own
parser), and only then does a thread see it. A slow or idle connection costs a file
descriptor and at most a few tens of KiB of buffer, never a thread, never a hash. Each
request must arrive whole within ``ANONSIGN_REQUEST_READ_SECONDS`` of the connection
(or, on a kept-alive one, of its first byte); a slower one is answered 408 and closed.
Threads then run requests that are all there: page loads go on while another thread
hashes, and how many hash at once is the hashing gate's (anonsign.web.capacity), not the
number of threads. Connections per worker are bounded by ``worker_connections`` (and
the file-descriptor limit, raised to its hard limit); past that, new connections wait in
the kernel's listen queue, which is where a flood of connections is left to tor's
intro-point limits and proof-of-work (deploy/README.md).

What it does not do: answer ``Expect: 100-continue`` before the body (it waits for the
body either way; browsers never send it, curl sends it only past 1 MiB and goes on after
a second), or speak HTTP/2 (off in gunicorn unless configured).

**gunicorn's own answers.** gunicorn answers by itself, before the app sees the request,
whenever it cannot parse one: a malformed request line or method, a NUL in the path, an
unknown HTTP version, a URI over ``limit_request_line`` (414), too many or too large
headers (431), a bad ``Content-Length`` or ``Transfer-Encoding``, an ``Expect`` other than
``100-continue`` (417); and with a 500 for anything that escapes the app. Its page
(``gunicorn.util.write_error``) has none of the headers of :mod:`anonsign.web.headers` and
quotes the rejected request line back into the answer. The hook gunicorn offers is the
worker's ``handle_error``; :class:`HeadersOnErrors` overrides it and nothing else: the
same statuses (except that no client gets a 5xx for what it sent), a fixed short page with
every security header, a log line naming only the exception's type. The answers the
event loop writes itself (408, 413, 431) are the same page.

:class:`SyncWorkerWithHeaders` (gunicorn's sync worker with the mixin) stays for
operators who choose ``worker_class`` themselves. No class name here may end in
``SyncWorker``: gunicorn silently swaps any such class for its threaded worker when
``threads > 1``, which would drop these headers unseen.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import ssl
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
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
from gunicorn.workers.gthread import TConn, ThreadWorker
from gunicorn.workers.sync import SyncWorker

from anonsign.cli.request_buffer import Verdict, examine
from anonsign.web.guard import BodyReadInterrupted
from anonsign.web.headers import SECURITY_HEADERS

#: One sentence per status, in English: no session or language choice exists yet when
#: gunicorn refuses a request, and Accept-Language is never read (Tor Browser sends en-US).
MESSAGES = {
    400: "This request was not understood. Please go back and try again.",
    403: "This is not allowed. Please go back to the petition page.",
    408: "The request took too long to arrive. Please try again.",
    413: "This request carried too much. Please go back and try again.",
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


#: File descriptors kept free for everything that is not a client connection (the
#: database, Redis, the listeners, the log).
RESERVED_FDS = 64
#: One ``recv`` in the event loop; a request is a few KiB.
RECV_SIZE = 64 * 1024


@dataclass(eq=False)
class Arriving:
    """A request still arriving on a connection, received in the event loop."""

    conn: TConn
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    done: bool = False


def _bounded_socket_waits(sock: socket.socket, seconds: int) -> None:
    """Bound every blocking send and receive on ``sock`` at the kernel: a thread writing
    a page to a client that reads nothing waits ``seconds``, then gives up."""
    value = struct.pack("ll", seconds, 0)
    for option in (socket.SO_SNDTIMEO, socket.SO_RCVTIMEO):
        sock.setsockopt(socket.SOL_SOCKET, option, value)


class BufferingThreadWorker(HeadersOnErrors, ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker that hands a thread only whole requests (module doc)."""

    #: Seconds a request has to arrive whole; set from ANONSIGN_REQUEST_READ_SECONDS.
    read_seconds = 10
    #: The app's body cap (ANONSIGN_MAX_CONTENT_LENGTH); a longer body is not waited for.
    body_limit = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arriving: deque[Arriving] = deque()

    def init_process(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        if soft != resource.RLIM_INFINITY:
            # Accepting past the descriptor limit would fail in the event loop.
            wanted: int = self.cfg.worker_connections
            self.worker_connections = max(1, min(wanted, soft - RESERVED_FDS))
        super().init_process()

    # --- the event loop's side --------------------------------------------------------

    def enqueue_req(self, conn: TConn) -> None:
        """Every path to a thread comes here (a new connection, a kept-alive one that
        became readable, bytes read ahead): the request arrives here first."""
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        if not conn.initialized:
            _bounded_socket_waits(conn.sock, self.read_seconds)
        conn.sock.setblocking(False)
        arriving = Arriving(conn, time.monotonic() + self.read_seconds, bytearray(leftover))
        self.arriving.append(arriving)
        if leftover and self._settle(arriving):
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._receive, arriving))

    def _receive(self, arriving: Arriving, sock: socket.socket) -> None:
        try:
            chunk = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            if arriving.data:
                # The client ended its side mid-request: what came is all there will be,
                # and the thread answers it as it stands (a cut body is a 400).
                self._hand_over(arriving)
            else:
                self._drop(arriving)
            return
        arriving.data += chunk
        self._settle(arriving)

    def _settle(self, arriving: Arriving) -> bool:
        """Hand a whole request to a thread, or answer one too large; True if either."""
        conn = arriving.conn
        req_number = (conn.parser.req_count + 1) if conn.parser is not None else 1
        verdict = examine(bytes(arriving.data), self.cfg, conn.client, req_number, self.body_limit)
        if verdict is Verdict.INCOMPLETE:
            return False
        if verdict is Verdict.COMPLETE:
            self._hand_over(arriving)
        else:
            self._stop_receiving(arriving)
            status = 431 if verdict is Verdict.HEAD_TOO_LARGE else 413
            self.log.warning("Refused a request too large to wait for (%d).", status)
            self._answer_and_close(arriving, status)
        return True

    def _hand_over(self, arriving: Arriving) -> None:
        """Give the request, as received, to a thread."""
        self._stop_receiving(arriving)
        arriving.conn.prebuffered = bytes(arriving.data)
        ThreadWorker.enqueue_req(self, arriving.conn)

    def _stop_receiving(self, arriving: Arriving) -> None:
        arriving.done = True
        # Registered only when its first bytes were not enough.
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(arriving.conn.sock)

    def _drop(self, arriving: Arriving) -> None:
        self._stop_receiving(arriving)
        self.nr_conns -= 1
        arriving.conn.close()

    def _answer_and_close(self, arriving: Arriving, status: int) -> None:
        try:
            util.write_nonblock(arriving.conn.sock, bare_answer(status))
        except OSError:
            self.log.debug("Failed to send error message.")
        self.nr_conns -= 1
        arriving.conn.close()

    def murder_pending(self) -> None:
        """Also close the connections whose request did not arrive in time (408)."""
        super().murder_pending()
        now = time.monotonic()
        while self.arriving and (self.arriving[0].done or self.arriving[0].deadline <= now):
            arriving = self.arriving.popleft()
            if arriving.done:
                continue
            self._stop_receiving(arriving)
            # Half a request, or a new connection that never said anything (a kept-alive
            # one only comes here once it has sent something).
            self.log.warning("A client was too slow to send its request (408).")
            self._answer_and_close(arriving, 408)

    # --- the thread's side ------------------------------------------------------------

    def handle(self, conn: TConn) -> Any:
        """Serve the whole request the event loop received, then on as gunicorn does."""
        data = getattr(conn, "prebuffered", b"")
        conn.prebuffered = b""
        conn.sock.setblocking(True)
        conn.init()
        if data:
            conn.parser.unreader.unread(data)
        conn.data_ready = True
        return super().handle(conn)
