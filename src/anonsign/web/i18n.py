"""Languages: which one a page is in, chosen with a plain link and remembered in the session.

Signers read Turkmen, Russian or English, and use Tor Browser at "Safest" (no JavaScript),
so the choice is a link on every page -- ``?lang=ru`` on the page being read -- and a GET
carrying a known ``lang`` stores it in the Flask session. The order is: ``?lang=`` on this
request, then the session's choice, then English. An unknown value is ignored, never an
error.

The Accept-Language header is never read. Tor Browser sends ``en-US`` to everyone, so it
says nothing about the reader; and a server that acted on it would answer the few
browsers that do leak a real language with a page unlike everyone else's -- one more
fingerprinting surface for people who cannot afford one.

The choice lives in the session cookie that already carries the CSRF token (HttpOnly,
SameSite=Strict, see ``anonsign.app``); no other cookie is added. SameSite=Strict means a
link followed from another site arrives without it, in English: links shared elsewhere
should carry their language (``/p/<slug>?lang=tk``).

A form carries its page's language too: the sign form posts to ``/p/<slug>/sign?lang=tk``,
so the answer (thank you, a refusal, the expired form, a 429 or 503) is in the language
the form was read in even when the cookie is gone by the time it is sent (Tor Browser's
New Identity, a restart). A POST never writes the choice into the session: the answer to
a signature sets no cookie, new or repeated.

This module owns the locale list and the language links; the catalogs are in
``translations/`` and are built by ``scripts/i18n.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import quote

from babel import Locale
from flask import Flask, request, session, url_for
from flask_babel import Babel

from anonsign.domain.petitions import LANGUAGES

#: The locales a page can be in; the first is the default.
LOCALES: Final = LANGUAGES
DEFAULT_LOCALE: Final = LOCALES[0]

#: Each language named in itself, so a reader finds theirs whatever the page is in.
NATIVE_NAMES: Final = {"en": "English", "ru": "Русский", "tk": "Türkmençe"}

LANG_PARAM: Final = "lang"
SESSION_KEY: Final = "lang"

TRANSLATIONS_DIR: Final = Path(__file__).parent / "translations"

_DIRECTIONS: Final = {code: Locale.parse(code).text_direction for code in LOCALES}

#: A page answering a POST has no GET of its own; its language links go to this page.
_GET_PAGE_FOR: Final = {"public.sign": "public.petition"}


def _known(value: object) -> str | None:
    return value if isinstance(value, str) and value in LOCALES else None


def select_locale() -> str:
    """``?lang=`` on this request, else the session's choice, else the default.

    Deliberately not ``request.accept_languages``: see the module docstring.
    """
    return (
        _known(request.args.get(LANG_PARAM)) or _known(session.get(SESSION_KEY)) or DEFAULT_LOCALE
    )


def _remember_choice() -> None:
    if request.method != "GET":
        return
    chosen = _known(request.args.get(LANG_PARAM))
    # Written only when it changes, so a page that repeats the same ?lang= sets no cookie.
    if chosen is not None and session.get(SESSION_KEY) != chosen:
        session[SESSION_KEY] = chosen


def page_for_links() -> str:
    """The path the language links point at: this page, or for a POST the page behind it.

    Only the path is kept, never the rest of the query string: the links then repeat
    nothing a crafted URL put there. ``Onion-Location`` (web.headers) starts from it too.
    """
    if request.method in ("GET", "HEAD"):
        return quote(request.script_root + request.path)
    endpoint = _GET_PAGE_FOR.get(request.endpoint or "")
    if endpoint is not None:
        return url_for(endpoint, **(request.view_args or {}))
    return url_for("public.index")


def _language_context() -> dict[str, object]:
    current = select_locale()
    page = page_for_links()
    return {
        "html_lang": current,
        "html_dir": _DIRECTIONS[current],
        "languages": [
            {
                "code": code,
                "name": NATIVE_NAMES[code],
                "href": f"{page}?{LANG_PARAM}={code}",
                "current": code == current,
            }
            for code in LOCALES
        ],
    }


def init_app(app: Flask) -> None:
    Babel(
        app,
        locale_selector=select_locale,
        default_locale=DEFAULT_LOCALE,
        default_translation_directories=str(TRANSLATIONS_DIR),
    )
    app.before_request(_remember_choice)
    app.context_processor(_language_context)
