"""Security headers on every answer, errors and 404s included.

The policy forbids scripts outright: signers run Tor Browser with JavaScript off, and a
page that needed it would push them to lower their protection. ``no-store`` keeps
pages out of the disk cache of a phone that may be seized.
"""

from __future__ import annotations

from flask import Flask, Response

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


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    # An ETag would let a page be told apart across visits; nothing here is worth caching.
    response.headers.pop("ETag", None)
    response.headers.pop("Last-Modified", None)
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
