"""Error pages: one sentence that says what to do next, the same headers, no traceback.

A rejected form (missing, expired or foreign token, or a foreign Origin) always gets the
same page, so the answer tells a prober nothing about why it was refused.

An error answering a sign post -- the expired form, a 429 or 503 from the rate limits, a
closed petition, a body too large -- is in the language of the form that was posted (its
action carries ``?lang=``, see web.i18n) and links back to that petition's form, in that
language: the reader who lost the session cookie between loading and posting (Tor
Browser's New Identity, a restart) is not left on an English page whose only way out is
the list of petitions.

A request refused before routing -- a Host that Werkzeug cannot IDNA-encode (a label over
63 characters, an empty label as in ``a..b``), or one outside TRUSTED_HOSTS -- has no URL
adapter, so ``url_for`` in the page (the stylesheet, the links) would fail, the error
handler would fail in turn, and gunicorn would answer a bare 500 without our headers.
:func:`error_page` therefore binds a neutral adapter first; the refused Host is never
written into the page.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, render_template, request, url_for
from flask.globals import request_ctx
from flask_babel import gettext, lazy_gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from anonsign.errors import MasterKeyMismatch, PetitionClosed, PetitionNotFound
from anonsign.web.i18n import select_locale

# Lazy: defined at import, translated into the locale of the request that shows them.
MESSAGES = {
    400: (
        lazy_gettext("Something in this request was not understood."),
        lazy_gettext("Please go back and try again."),
    ),
    403: (
        lazy_gettext("This is not allowed."),
        lazy_gettext("Please go back to the petition page."),
    ),
    404: (
        lazy_gettext("This page does not exist."),
        lazy_gettext("Check the address, or go to the list of petitions."),
    ),
    405: (
        lazy_gettext("This page cannot be used like this."),
        lazy_gettext("Please open it from a link on this site."),
    ),
    410: (
        lazy_gettext("This petition is closed."),
        lazy_gettext("It no longer accepts signatures."),
    ),
    413: (
        lazy_gettext("What you sent is too large."),
        lazy_gettext("Please go back and shorten what you entered."),
    ),
    429: (
        lazy_gettext("Too many requests right now."),
        lazy_gettext("Please wait a few minutes and try again."),
    ),
    503: (
        lazy_gettext("The service is busy right now."),
        lazy_gettext("Please try again in a minute."),
    ),
    500: (
        lazy_gettext("Something went wrong on our side."),
        lazy_gettext("Nothing you entered was kept. Please try again."),
    ),
}

#: The view a signer posts to; its error pages lead back to the petition being signed.
SIGN_ENDPOINT = "public.sign"

# Said the same way whatever failed (a stale page, a lost cookie, a foreign post): most
# who read it are on a page left open too long, and "did not come from this site" read
# like an attack to them (docs/translation-review.md).
FORM_EXPIRED = (
    lazy_gettext("This page is out of date."),
    lazy_gettext("Nothing was signed. Please go back, reload the petition page, and sign again."),
)


def _bind_neutral_url_adapter() -> None:
    """Give a request refused before routing a URL adapter for relative links only."""
    if request_ctx.url_adapter is None:
        request_ctx.url_adapter = current_app.url_map.bind(
            "localhost", script_name=request.script_root or "/", url_scheme=request.scheme
        )


def back_to_petition(status: int) -> str | None:
    """For an error answering a sign post: the petition's form, in this page's language.

    None for any other page, and for a petition that does not exist (the 404 of an
    unknown slug). The slug is the one routed to, quoted by ``url_for``; no lookup is
    made here, so an error page never depends on the database it may be reporting.
    """
    if status == 404 or request.endpoint != SIGN_ENDPOINT:
        return None
    slug = (request.view_args or {}).get("slug")
    if not isinstance(slug, str):
        return None
    return url_for("public.petition", slug=slug, lang=select_locale(), _anchor="sign")


def error_page(status: int, title: str | None = None, hint: str | None = None) -> tuple[str, int]:
    _bind_neutral_url_adapter()
    default_title, default_hint = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    return (
        render_template(
            "errors/error.html",
            status=status,
            # str(): a translation is text, escaped like any other, never markup.
            title=str(title or default_title),
            hint=str(hint or default_hint),
            petition_href=back_to_petition(status),
        ),
        status,
    )


def form_rejected() -> tuple[str, int]:
    return error_page(400, *FORM_EXPIRED)


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(_error: CSRFError) -> tuple[str, int]:
        return form_rejected()

    @app.errorhandler(PetitionNotFound)
    def _not_found(_error: PetitionNotFound) -> tuple[str, int]:
        return error_page(404, gettext("There is no petition at this address."))

    @app.errorhandler(PetitionClosed)
    def _closed(_error: PetitionClosed) -> tuple[str, int]:
        return error_page(410)

    @app.errorhandler(MasterKeyMismatch)
    def _other_host_rotated(_error: MasterKeyMismatch) -> Response:
        # Another host of the instance closed a petition, which rewrapped every open
        # pepper under a new master key that this host has not been given yet (deploy/
        # README.md, "Several hosts"). The signer is told what a full server tells them:
        # nothing was signed, come back; the operator reads why in the log.
        from anonsign.web.capacity import shed_answer  # capacity imports this module

        app.logger.error(
            "the master key does not open this petition's secret: another host closed a "
            "petition; copy its new sealed master key here and unlock it"
        )
        return shed_answer()

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> tuple[str, int]:
        return error_page(error.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[str, int]:
        # Logged without request data: the logging filter (anonsign.logs) strips it.
        app.logger.error("unexpected error: %s", type(error).__name__)
        return error_page(500)
