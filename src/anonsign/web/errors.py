"""Error pages: one sentence that says what to do next, the same headers, no traceback.

A rejected form (missing, expired or foreign token, or a foreign Origin) always gets the
same page, so the answer tells a prober nothing about why it was refused.
"""

from __future__ import annotations

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from anonsign.errors import PetitionClosed, PetitionNotFound

MESSAGES = {
    400: ("Something in this request was not understood.", "Please go back and try again."),
    403: ("This is not allowed.", "Please go back to the petition page."),
    404: ("This page does not exist.", "Check the address, or go to the list of petitions."),
    405: ("This page cannot be used like this.", "Please open it from a link on this site."),
    410: ("This petition is closed.", "It no longer accepts signatures."),
    413: (
        "What you sent is too large.",
        "Please go back and shorten what you entered.",
    ),
    429: ("Too many requests right now.", "Please wait a few minutes and try again."),
    500: ("Something went wrong on our side.", "Nothing you entered was kept. Please try again."),
}

FORM_EXPIRED = (
    "This form has expired or did not come from this site.",
    "Nothing was signed. Please go back, reload the petition page, and sign again.",
)


def error_page(status: int, title: str | None = None, hint: str | None = None) -> tuple[str, int]:
    default_title, default_hint = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    return (
        render_template(
            "errors/error.html",
            status=status,
            title=title or default_title,
            hint=hint or default_hint,
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
        return error_page(404, "There is no petition at this address.")

    @app.errorhandler(PetitionClosed)
    def _closed(_error: PetitionClosed) -> tuple[str, int]:
        return error_page(410)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> tuple[str, int]:
        return error_page(error.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[str, int]:
        # Logged without request data: the logging filter (anonsign.logs) strips it.
        app.logger.error("unexpected error: %s", type(error).__name__)
        return error_page(500)
