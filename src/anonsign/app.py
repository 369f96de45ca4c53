"""``create_app``: the one place that knows every subsystem, kept a short list."""

from __future__ import annotations

import logging

from flask import Flask

from anonsign.config import Settings, load_settings
from anonsign.instance import load_session_key
from anonsign.logs import PrivacyFilter
from anonsign.publisher import PublisherThread
from anonsign.service import Service


def create_app(settings: Settings | None = None, *, service: Service | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(
        "anonsign.web",
        instance_path=str(settings.instance_path),
        static_folder="static",
        template_folder="templates",
    )
    app.config.update(
        SECRET_KEY=load_session_key(settings),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        MAX_FORM_MEMORY_SIZE=settings.max_content_length,
        MAX_FORM_PARTS=settings.max_form_parts,
        SESSION_COOKIE_NAME="anonsign",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # Onion services are HTTP by design (Tor encrypts end to end), so no Secure flag.
        SESSION_COOKIE_SECURE=False,
        # Tor circuits are slow and people hesitate before signing something that can cost
        # them: the CSRF token lasts as long as the sign form's own token (six hours by
        # default), so a form that one accepts the other does not refuse.
        WTF_CSRF_TIME_LIMIT=settings.form_max_seconds,
        # The Referer check is for HTTPS only; the Origin check in web.public covers us.
        WTF_CSRF_SSL_STRICT=False,
        # WTForms' own messages are never shown (a refusal is one of ours, translated by
        # Flask-Babel), and Flask-WTF would otherwise load its catalog on every request.
        WTF_I18N_ENABLED=False,
        TEMPLATES_AUTO_RELOAD=False,
    )
    if settings.trusted_hosts:
        app.config["TRUSTED_HOSTS"] = list(settings.trusted_hosts)
    app.logger.addFilter(PrivacyFilter())
    logging.getLogger("werkzeug").disabled = True

    app.extensions["anonsign.settings"] = settings
    svc = app.extensions["anonsign.service"] = service or Service.open(settings)
    if settings.publisher_period > 0:
        # Each server process publishes due batches in the background; the database lock
        # makes concurrent publishers safe (anonsign.publisher).
        publisher = PublisherThread(svc.publish_due, settings.publisher_period)
        publisher.start()
        app.extensions["anonsign.publisher"] = publisher

    @app.context_processor
    def _site() -> dict[str, str]:
        return {"site_name": settings.site_name}

    from anonsign import web

    web.init_app(app)
    return app
