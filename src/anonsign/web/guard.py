"""What the app reads of a request's bytes: what a client broke is its 400, never our 500.

gunicorn decodes a chunked body lazily, while the app reads it (the form parser, the CSRF
check). A bad chunk size (``ZZZ``), a chunk without its CRLF or a malformed chunk
extension raises gunicorn's own ``InvalidChunkSize``, ``ChunkMissingTerminator`` or
``InvalidChunkExtension``: plain ``Exception`` subclasses, neither the ``OSError`` nor the
``ValueError`` that Werkzeug's stream turns into ``ClientDisconnected`` (400). They
reached the app's catch-all as unexpected errors and came back as 500 -- an error any
client could cause at will, and one the log then reports as our fault.

Why a WSGI middleware around ``wsgi.input`` rather than an error handler for gunicorn's
exception classes: it covers every reader of the body (form parsing, ``get_data``, the
CSRF check, whatever comes next), keeps the app free of gunicorn imports, and states the
rule in one place: whatever the input stream raises is about the bytes the client sent,
so it is :class:`MalformedBody`, a 400 page with every header (web.errors, web.headers).

Why the Host is not checked here too: Werkzeug already validates it (its characters in
``get_host``, IDNA in ``Map.bind``, TRUSTED_HOSTS when set); what failed was rendering
its refusal, fixed in web.errors. A second host rule here could only disagree with the
one Werkzeug routes by.

The raw query string: Werkzeug decodes it strictly as UTF-8 (``request.args``), so a raw
byte such as ``\x80`` raised UnicodeDecodeError on every read, the error page's language
choice included. gunicorn refuses such a request line itself; for any server that passes
one on, the guard percent-encodes non-ASCII bytes, which is what they mean in a URI (RFC
3986 allows only ASCII there; ``%80`` and a raw 0x80 are the same byte to a parser).

One more case: gunicorn aborts a sync worker that a client holds past the timeout (half a
body, then silence) by raising ``SystemExit`` inside the read. That exit is re-raised as
:class:`BodyReadInterrupted`, so the worker (anonsign.cli.gunicorn_worker) knows the
client was slow and answers 408, not 500.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, TypeVar
from urllib.parse import quote

from flask import Flask
from werkzeug.exceptions import BadRequest, HTTPException

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

T = TypeVar("T")

#: Printable ASCII stays as it is in a query string; everything else is percent-encoded.
_QUERY_SAFE = "".join(c for c in string.printable if c not in string.whitespace)


class MalformedBody(BadRequest):
    """The request body could not be read as it was sent (a malformed chunk, a cut stream)."""


class BodyReadInterrupted(SystemExit):
    """The process was told to stop while it still waited for the client's body."""


class GuardedInput:
    """``wsgi.input`` whose every failure is the client's :class:`MalformedBody`."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def _guarded(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except HTTPException:
            raise
        except SystemExit as exc:
            raise BodyReadInterrupted(exc.code) from exc
        except Exception as exc:
            # Only the exception's type leaves here: its message may quote the body.
            raise MalformedBody() from exc

    def read(self, size: int | None = -1) -> bytes:
        return self._guarded(lambda: self._stream.read(-1 if size is None else size))

    def readline(self, size: int | None = -1) -> bytes:
        return self._guarded(lambda: self._stream.readline(-1 if size is None else size))

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._guarded(lambda: self._stream.readlines(hint))

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class RequestGuard:
    """WSGI middleware: an ASCII query string, and :class:`GuardedInput` for the body."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        if not query.isascii():
            # WSGI strings carry bytes as latin-1; anything else is already not a byte.
            environ["QUERY_STRING"] = quote(query.encode("latin-1", "replace"), _QUERY_SAFE)
        stream = environ.get("wsgi.input")
        if stream is not None:
            environ["wsgi.input"] = GuardedInput(stream)
        return self.app(environ, start_response)


def init_app(app: Flask) -> None:
    app.wsgi_app = RequestGuard(app.wsgi_app)  # type: ignore[method-assign]
