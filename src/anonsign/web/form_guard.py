"""Sign forms that cannot be replayed or scripted cheaply, without JavaScript.

Every rendering of the sign form carries a fresh form token (crypto.form_token): it names
the petition and the moment the page was rendered, under the session key. A post is
accepted only with a genuine token for this petition, posted between
``ANONSIGN_FORM_MIN_SECONDS`` (2) and ``ANONSIGN_FORM_MAX_SECONDS`` (six hours) after that
moment, never before, and with the honeypot field empty. This stops the attack that
motivated it: one client, one CSRF token, thousands of fake identifiers an hour. Each post
now needs its own page load, at least two seconds old, and cheap form-filling scripts that
fill every field are refused outright.

Beside Flask-WTF's CSRF token, not instead of it: the CSRF token binds a post to the
browser's session cookie (so another site, or another session, cannot post with it), and
a form token is not bound to any session (it is stateless and needs no second cookie).
Each does one job; a post needs both.

Every refusal here -- malformed, forged, for another petition, too soon, too old, already
used, honeypot filled -- is the petition page again with one message and a fresh token,
status 400: it tells a script nothing about which rule it broke, and a person (who posted
in under two seconds, or pressed Back and Sign again) simply signs again. Nothing is hashed,
kept or counted for a refused post. An accepted token is spent before the identifier is
even read, whatever it turns out to be (SECURITY.md, "no membership oracle").
"""

from __future__ import annotations

from flask import Flask, current_app
from flask_babel import lazy_gettext

from anonsign.config import Settings
from anonsign.crypto.form_token import FormTokenRefused, FormTokens
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from anonsign.web.forms import SignForm

EXTENSION = "anonsign.form_tokens"

# One message for every refusal, so the page does not say which check failed (nor how
# soon is too soon: the bound is public, but no answer needs to teach it).
FORM_REFUSED = lazy_gettext(
    "This form has expired or was already used, so nothing was signed. "
    "Please check the form and sign again."
)


def form_tokens() -> FormTokens:
    tokens: FormTokens = current_app.extensions[EXTENSION]
    return tokens


def issue_form_token(petition: Petition) -> str:
    """A fresh token for one rendering of ``petition``'s sign form."""
    return form_tokens().issue(petition.id)


def accept_sign_form(petition: Petition, form: SignForm) -> bool:
    """True if this post may go on to be signed; its token is then spent.

    Checks that cost nothing come first and store nothing when they refuse; only a post
    that passes them all spends its token, in a transaction of its own.
    """
    tokens = form_tokens()
    try:
        accepted = tokens.check(form.form_token.data or "", petition.id)
    except FormTokenRefused:
        return False
    if form.website.data:
        # The honeypot: hidden by the stylesheet, skipped by Tab, labelled "leave this
        # field empty" for screen readers. Only a script that fills every field fills it.
        return False
    svc: Service = current_app.extensions["anonsign.service"]
    # A used token is a replay: the same page posted twice by a script (or by a person
    # who pressed Back), refused whichever worker or host it reaches.
    return svc.use_form_nonce(
        accepted.nonce, accepted.expires_hour, current_hour=tokens.current_hour()
    )


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["anonsign.settings"]
    app.extensions[EXTENSION] = FormTokens(
        app.config["SECRET_KEY"],
        min_seconds=settings.form_min_seconds,
        max_seconds=settings.form_max_seconds,
    )
