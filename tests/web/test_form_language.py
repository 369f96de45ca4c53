"""The sign form speaks the reader's language, whatever the browser does.

The browser's own validation used to stop the post first (issue 9, item 3), with a bubble
in the browser's language ("Please fill out this field."; Tor Browser has no Turkmen), so
the server's translated message never showed. The form is ``novalidate`` and no field
``required``.
"""

from __future__ import annotations

import html as html_module
import re
from html.parser import HTMLParser

import pytest
from babel.support import Translations
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.test import TestResponse

from anonsign.domain import identifiers
from anonsign.domain.petitions import Petition
from anonsign.web import i18n
from tests.conftest import form_fields

TRANSLATED = [code for code in i18n.LOCALES if code != i18n.DEFAULT_LOCALE]
ACTION = re.compile(r'<form method="post" action="([^"]+)"')
LANGUAGE = re.compile(r'<html lang="([^"]*)"')


def tr(locale: str, msgid: str) -> str:
    text = Translations.load(str(i18n.TRANSLATIONS_DIR), [locale]).gettext(msgid)
    assert text != msgid or locale == i18n.DEFAULT_LOCALE, f"{msgid!r} not in {locale}"
    return str(escape(text))


def text_of(answer: TestResponse) -> str:
    return answer.get_data(as_text=True)


def language_of(answer: TestResponse) -> str:
    match = LANGUAGE.search(text_of(answer))
    assert match, "no <html lang>"
    return match.group(1)


def action_of(page: str) -> str:
    """Where the page's form posts, as a browser reads the attribute (without #sign)."""
    match = ACTION.search(page)
    assert match, "the page has no sign form"
    return html_module.unescape(match.group(1)).partition("#")[0]


def load_form(client: FlaskClient, slug: str, locale: str) -> tuple[str, dict[str, str]]:
    """Open the petition in ``locale`` and take its form: (action, hidden fields)."""
    page = client.get(f"/p/{slug}?lang={locale}")
    assert page.status_code == 200
    html = text_of(page)
    return action_of(html), form_fields(html)


# --- item 3: the browser never answers for the server -----------------------------------------


class FormFields(HTMLParser):
    """The sign form's own attributes, and every field inside it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form: dict[str, str | None] | None = None
        self.fields: list[dict[str, str | None]] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.form, self._inside = dict(attrs), True
        elif self._inside and tag in ("input", "textarea", "select", "button"):
            self.fields.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_the_browser_cannot_stop_the_post_with_its_own_bubbles(
    client: FlaskClient, petition: Petition, phone_petition: Petition, locale: str
) -> None:
    for slug in (petition.slug, phone_petition.slug):
        parsed = FormFields()
        parsed.feed(text_of(client.get(f"/p/{slug}?lang={locale}")))
        assert parsed.form is not None
        assert "novalidate" in parsed.form, parsed.form
        required = [f.get("name") for f in parsed.fields if "required" in f]
        assert not required, f"the browser would refuse these itself: {required}"
        # Still announced as needed to screen readers.
        by_name = {f.get("name"): f for f in parsed.fields}
        assert by_name["identifier"].get("aria-required") == "true"
        assert by_name["consent"].get("aria-required") == "true"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_an_empty_form_gets_the_servers_message_in_the_readers_language(
    client: FlaskClient, phone_petition: Petition, locale: str
) -> None:
    """What the browser's "Please fill out this field." used to hide."""
    action, fields = load_form(client, phone_petition.slug, locale)
    nothing = client.post(action, data=fields | {"identifier": ""})
    assert nothing.status_code == 400
    assert language_of(nothing) == locale
    assert tr(locale, "Please tick the box to confirm that you want to sign.") in text_of(nothing)

    action, fields = load_form(client, phone_petition.slug, locale)
    no_number = client.post(action, data=fields | {"identifier": "", "consent": "y"})
    assert no_number.status_code == 400
    assert tr(locale, identifiers.PHONE_EMPTY_MESSAGE) in text_of(no_number)
