"""Is a whole request here yet? gunicorn's own parser, run over the bytes received so far.

The threaded worker (anonsign.cli.gunicorn_worker) receives a request in its event loop
and hands it to a thread only when it is complete, so that a client sending its headers
and half a body, then nothing, holds a file descriptor and a small buffer but never a
thread, and never the process that hashes. Deciding "complete" means knowing where the
request ends: after its head, and after the body that ``Content-Length`` or chunked
framing announces. That is the parser's knowledge, and a second HTTP parser here could
disagree with it (request smuggling lives in such disagreements), so this module runs
gunicorn's :class:`~gunicorn.http.message.Request` over the buffered bytes, with the
worker's own configuration (the PROXY line included), and reads the body it announces:

- running out of bytes (``NoMoreData``) means *incomplete*: wait for more;
- a body of known length that is shorter than announced is *incomplete*;
- any other failure means the request is malformed, which is *complete* too: the thread's
  parse fails the same way at once and answers 400, 414 or 431 without waiting;
- a head or body larger than this module bounds (:data:`HEAD_LIMIT`) is *too large*: the
  event loop answers it itself, since waiting for the rest would be what a slow client
  wants.

Parsing starts over on every arrival of bytes; requests here are a few kilobytes, so
that costs microseconds, and it keeps no parser state between arrivals to get wrong.
"""

from __future__ import annotations

import enum
from typing import Any

from gunicorn.http.body import LengthReader
from gunicorn.http.errors import NoMoreData
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader

#: The largest head (request line and headers) waited for. A browser sends well under
#: 2 KiB; gunicorn's own limits would allow about 200 KiB, which a slow client could
#: make every connection hold.
HEAD_LIMIT = 16 * 1024


class Verdict(enum.Enum):
    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    #: 431 or 413, answered without waiting for the rest.
    HEAD_TOO_LARGE = "head too large"
    BODY_TOO_LARGE = "body too large"


def examine(data: bytes, cfg: Any, peer: Any, req_number: int, body_limit: int) -> Verdict:
    """Whether ``data`` holds a whole request, as gunicorn will parse it.

    ``req_number`` is the request's place on its connection (1: the first, which may
    start with a PROXY line); ``body_limit``: the largest body the app accepts.
    """
    if not data:
        return Verdict.INCOMPLETE
    try:
        request = Request(cfg, IterUnreader([data]), peer, req_number)
    except NoMoreData:
        return Verdict.HEAD_TOO_LARGE if len(data) > HEAD_LIMIT else Verdict.INCOMPLETE
    except Exception:
        # Malformed: the thread's parse raises the same, and answers at once.
        return Verdict.COMPLETE
    body = request.body
    reader = getattr(body, "reader", None)
    if isinstance(reader, LengthReader):
        expected = reader.length
        if expected > body_limit:
            # The app refuses it (413) from Content-Length alone, reading nothing.
            return Verdict.COMPLETE
        received = len(body.read())
        return Verdict.COMPLETE if received >= expected else Verdict.INCOMPLETE
    try:
        body.read()
    except NoMoreData:
        too_large = len(data) > HEAD_LIMIT + body_limit
        return Verdict.BODY_TOO_LARGE if too_large else Verdict.INCOMPLETE
    except Exception:
        return Verdict.COMPLETE
    return Verdict.COMPLETE
