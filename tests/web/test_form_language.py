"""The sign form speaks the reader's language, whatever the browser and the cookie do.

Two ways it used not to (issue 9, items 3 and 4):

- The browser's own validation stopped the post first, with a bubble in the browser's
  language ("Please fill out this field."; Tor Browser has no Turkmen), so the server's
  translated message never showed. The form is ``novalidate`` and no field ``required``.
- The language lived only in the session cookie. When the cookie is gone between loading
  the form and sending it (Tor Browser's New Identity, a restart), the expired-form page
  came back in English, with only "All petitions" as a way out. The form now posts to
  ``/p/<slug>/sign?lang=<its language>``: every answer to it -- the expired form, a
  refusal, a 429 or 503 of the rate limits, a closed petition -- is in that language and
  links back to the petition's form, in that language too.

The whole round trip in a real browser with JavaScript off is in tests/browser/.
"""

from __future__ import annotations

import html as html_module
import re
from html.parser import HTMLParser

import pytest
from babel.support import Translations
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.test import TestResponse

from anonsign.config import Settings
from anonsign.domain import identifiers
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from anonsign.web import i18n
from tests.conftest import SUBMITTED, form_fields, spoofed_client
from tests.web.test_limits import client_from, limited_app

TRANSLATED = [code for code in i18n.LOCALES if code != i18n.DEFAULT_LOCALE]
ACTION = re.compile(r'<form method="post" action="([^"]+)"')
LANGUAGE = re.compile(r'<html lang="([^"]*)"')
FORM_EXPIRED_HINT = "Nothing was signed. Please go back, reload the petition page, and sign again."


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


def filled(fields: dict[str, str], identifier: str) -> dict[str, str]:
    SUBMITTED.add(identifier)
    return fields | {"identifier": identifier, "consent": "y"}


def back_link(slug: str, locale: str) -> str:
    return f'href="/p/{slug}?lang={locale}#sign"'


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


# --- item 4: the language travels with the form -----------------------------------------------


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_the_form_posts_its_own_language(
    client: FlaskClient, petition: Petition, locale: str
) -> None:
    action, _ = load_form(client, petition.slug, locale)
    assert action == f"/p/{petition.slug}/sign?lang={locale}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_a_cookie_lost_between_load_and_post_gets_the_expired_page_in_the_forms_language(
    app: Flask, client: FlaskClient, petition: Petition, service: Service, locale: str
) -> None:
    action, fields = load_form(client, petition.slug, locale)
    # Tor Browser's New Identity: the same form, sent from a browser with no cookie.
    after_new_identity = spoofed_client(app)
    answer = after_new_identity.post(action, data=filled(fields, "lost@example.org"))
    assert answer.status_code == 400
    assert language_of(answer) == locale
    page = text_of(answer)
    assert tr(locale, "This page is out of date.") in page
    assert tr(locale, FORM_EXPIRED_HINT) in page
    assert "This page is out of date." not in page  # not English
    # The way back is the petition's form, in the same language, not only "All petitions".
    assert back_link(petition.slug, locale) in page
    assert tr(locale, "Back to the petition") in page
    assert f'href="/?lang={locale}"' in page
    assert answer.headers.get("Set-Cookie") is None
    back = after_new_identity.get(f"/p/{petition.slug}?lang={locale}")
    assert back.status_code == 200
    assert language_of(back) == locale
    assert next(s.signatures for s in service.summaries()) == 0


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_answer_is_in_the_forms_language_when_the_session_says_another(
    client: FlaskClient, petition: Petition, locale: str
) -> None:
    """The form was read in one language; another tab has since chosen English."""
    action, fields = load_form(client, petition.slug, locale)
    client.get("/?lang=en")
    thanks = client.post(action, data=filled(fields, "tab@example.org"))
    assert thanks.status_code == 200
    assert language_of(thanks) == locale
    assert tr(locale, "Thank you") in text_of(thanks)
    # The same answer, byte for byte, for the same person signing again.
    action, fields = load_form(client, petition.slug, locale)
    client.get("/?lang=en")
    again = client.post(action, data=filled(fields, "Tab@Example.org"))
    assert again.get_data() == thanks.get_data()
    assert again.headers.get("Set-Cookie") is None


@pytest.mark.parametrize("locale", TRANSLATED)
def test_a_petition_closed_while_the_form_was_open_answers_in_its_language(
    client: FlaskClient, petition: Petition, service: Service, locale: str
) -> None:
    action, fields = load_form(client, petition.slug, locale)
    client.get("/?lang=en")
    service.close(petition.slug)
    answer = client.post(action, data=filled(fields, "late@example.org"))
    assert answer.status_code == 410
    assert language_of(answer) == locale
    assert tr(locale, "This petition is closed.") in text_of(answer)
    assert back_link(petition.slug, locale) in text_of(answer)


def test_a_post_to_no_petition_does_not_link_back_to_it(
    client: FlaskClient, petition: Petition
) -> None:
    _, fields = load_form(client, petition.slug, "ru")
    answer = client.post("/p/no-such-petition/sign?lang=ru", data=filled(fields, "x@example.org"))
    assert answer.status_code == 404
    assert language_of(answer) == "ru"
    assert back_link("no-such-petition", "ru") not in text_of(answer)
    assert tr("ru", "Back to the petition") not in text_of(answer)


def test_error_pages_that_answer_no_form_have_no_way_back_to_one(
    client: FlaskClient, petition: Petition
) -> None:
    for path in ("/no-such-page?lang=tk", f"/p/{petition.slug}/sign?lang=tk"):
        answer = client.get(path)
        assert answer.status_code in (404, 405)
        assert language_of(answer) == "tk"
        assert tr("tk", "Back to the petition") not in text_of(answer)
        assert 'href="/?lang=tk"' in text_of(answer)


@pytest.mark.parametrize("locale", TRANSLATED)
def test_a_rate_limited_post_answers_in_the_forms_language_with_the_way_back(
    settings: Settings, service: Service, petition: Petition, locale: str
) -> None:
    app = limited_app(settings, service, ratelimit_petition="1/minute")
    first = client_from(app, "198.51.100.41")
    action, fields = load_form(first, petition.slug, locale)
    assert first.post(action, data=filled(fields, "first@example.org")).status_code == 200
    second = client_from(app, "198.51.100.42")
    action, fields = load_form(second, petition.slug, locale)
    second.get("/?lang=en")
    refused = second.post(action, data=filled(fields, "second@example.org"))
    assert refused.status_code == 429
    assert language_of(refused) == locale
    hint = Translations.load(str(i18n.TRANSLATIONS_DIR), [locale]).ngettext(
        "Nothing was signed. Please come back in %(num)d minute and sign again.",
        "Nothing was signed. Please come back in %(num)d minutes and sign again.",
        1,
    )
    assert str(escape(hint % {"num": 1})) in text_of(refused)
    assert back_link(petition.slug, locale) in text_of(refused)


@pytest.mark.parametrize("locale", TRANSLATED)
def test_a_post_refused_while_the_limiter_is_down_answers_in_the_forms_language(
    settings: Settings, service: Service, petition: Petition, locale: str
) -> None:
    app = limited_app(settings, service, ratelimit_storage_uri="redis://127.0.0.1:1/0")
    client = client_from(app)
    action, fields = load_form(client, petition.slug, locale)
    client.get("/?lang=en")
    answer = client.post(action, data=filled(fields, "down@example.org"))
    assert answer.status_code == 503
    assert language_of(answer) == locale
    assert tr(locale, "The service is busy right now.") in text_of(answer)
    assert tr(locale, "Nothing was signed. Please try again in a minute.") in text_of(answer)
    assert back_link(petition.slug, locale) in text_of(answer)
