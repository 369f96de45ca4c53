"""Security headers on every answer, errors and 404s included; the stylesheet served whole.

The policy forbids scripts outright: signers run Tor Browser with JavaScript off, and a
page that needed it would push them to lower their protection. ``no-store`` keeps
pages out of the disk cache of a phone that may be seized.

``Onion-Location`` (only when ANONSIGN_ONION_ADDRESS is set): an HTML answer on any other
host -- a clearnet mirror -- names the same page on the onion, and Tor Browser offers to
switch to it.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import quote

from flask import Flask, Response, abort, current_app, request, send_from_directory

from anonsign.config import Settings
from anonsign.web import i18n

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # same-origin keeps the Origin header on our own form posts (checked against CSRF)
    # and sends nothing to any other site a petition text links to.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: Endpoints whose 200 answers may be cached, and how: the log's tiles (web.log), public
#: and immutable by the tlog-tiles spec. No page is among them.
CACHEABLE_ENDPOINTS = {"log.tile": "public, max-age=31536000, immutable"}

#: Validators and range support: an ETag or Last-Modified would let a page or the
#: stylesheet be told apart across visits (and dates the installation); nothing here is
#: worth caching, so nothing is revalidated or served in pieces.
REMOVED_HEADERS = ("ETag", "Last-Modified", "Accept-Ranges")

ONION_LOCATION = "Onion-Location"

# Characters a query string may keep as they are; anything else is percent-encoded, so
# the header never carries a raw byte the client put in its request line.
_QUERY_SAFE = "=&;%+/?:@!$'()*,~"


def _hostname(raw_host: str) -> str:
    host = raw_host.strip().lower()
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and not host.endswith("]") else host


def _onion_location(response: Response) -> None:
    settings: Settings = current_app.extensions["anonsign.settings"]
    onion = settings.onion_address
    if onion is None or response.mimetype != "text/html":
        return
    # The Host header as sent: request.host raises for a host that TRUSTED_HOSTS refused,
    # and that answer is a page too.
    if _hostname(request.environ.get("HTTP_HOST", "")) == onion:
        return
    target = i18n.page_for_links()
    if request.method in ("GET", "HEAD") and request.query_string:
        target += "?" + quote(request.query_string, safe=_QUERY_SAFE)
    response.headers[ONION_LOCATION] = f"http://{onion}{target}"


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if request.endpoint in CACHEABLE_ENDPOINTS and response.status_code == 200:
        # A log tile: the same bytes for everyone, forever.
        response.headers["Cache-Control"] = CACHEABLE_ENDPOINTS[request.endpoint]
    for name in REMOVED_HEADERS:
        response.headers.pop(name, None)
    _onion_location(response)
    return response


def static_file(filename: str) -> Response:
    """The stylesheet, whole, every time.

    Flask's own static view answers ``If-Modified-Since`` with 304 and ``Range`` with 206
    before any ``after_request`` hook can stop it: removing the validators afterwards
    would still leave a 304 that confirms the file's date. The file is a few KiB.
    """
    folder = cast(str, current_app.static_folder)  # create_app always sets one
    return send_from_directory(folder, filename, max_age=None, etag=False, conditional=False)


def refuse_options() -> None:
    """Answer OPTIONS with 405 like any other unused method (no CORS, nothing to offer)."""
    if request.method == "OPTIONS":
        abort(405)


def init_app(app: Flask) -> None:
    app.view_functions["static"] = static_file
    app.before_request(refuse_options)
    app.after_request(add_security_headers)
