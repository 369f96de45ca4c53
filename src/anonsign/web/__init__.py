"""Everything HTTP: blueprints, forms, headers, error pages, templates and the one CSS file.

Pages must work in Tor Browser at its "Safest" level: no JavaScript, no SVG, no web
fonts, nothing loaded from another origin (SECURITY.md, "usable over Tor").
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from anonsign.web import errors, guard, headers, i18n, limits, log, public, stats

    # First: every other part renders pages, and a page needs its locale.
    i18n.init_app(app)
    headers.init_app(app)
    errors.init_app(app)
    # Before public and limits: their answers to sign posts are counted.
    stats.init_app(app, app.extensions["anonsign.service"])
    public.init_app(app)
    # After public: it wraps the sign view and limits the public blueprint's pages.
    limits.init_app(app)
    log.init_app(app)
    # Around the whole WSGI app, so every reader of the body goes through it.
    guard.init_app(app)
