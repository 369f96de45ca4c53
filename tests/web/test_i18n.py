"""Languages: complete catalogs, fresh .mo files, and a choice that needs no JavaScript.

A signer picks a language with a plain link (``?lang=ru``); the choice is kept in the
session cookie and nowhere else, and Accept-Language is never read (Tor Browser sends
``en-US`` to everyone; see ``anonsign.web.i18n``).
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.support import Translations
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.test import TestResponse

from anonsign.domain import identifiers
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from anonsign.web import i18n
from tests.conftest import sign

TRANSLATED = [code for code in i18n.LOCALES if code != i18n.DEFAULT_LOCALE]
PLACEHOLDER = re.compile(r"%(?:\([A-Za-z_][A-Za-z0-9_]*\))?[-#0 +]*\d*(?:\.\d+)?[sdifr%]")
CYRILLIC = re.compile("[\u0400-\u04ff]")


@cache
def i18n_script() -> ModuleType:
    """scripts/i18n.py, the one place that knows how messages are extracted."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "i18n.py"
    spec = importlib.util.spec_from_file_location("anonsign_i18n_script", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def template() -> Catalog:
    script = i18n_script()
    catalog: Catalog = script.read_catalog(script.TEMPLATE)
    return catalog


def po(locale: str) -> Catalog:
    script = i18n_script()
    catalog: Catalog = script.read_catalog(script.po_path(locale), locale)
    return catalog


def ids(catalog: Catalog) -> set[str | tuple[str, ...]]:
    return {m.id for m in catalog if m.id}


def forms(value: str | tuple[str, ...] | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def frozen(value: str | tuple[str, ...] | list[str]) -> str | tuple[str, ...]:
    return value if isinstance(value, str) else tuple(value)


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


@cache
def translations(locale: str) -> Translations:
    return Translations.load(str(i18n.TRANSLATIONS_DIR), [locale])


def tr(locale: str, msgid: str) -> str:
    """The text a page in ``locale`` shows for ``msgid``, as it appears in the HTML."""
    text = translations(locale).gettext(msgid)
    assert text != msgid, f"{msgid!r} is not translated into {locale}"
    return str(escape(text))


# --- (a) the catalogs are complete ------------------------------------------------------------


def test_the_template_has_exactly_the_messages_in_the_sources() -> None:
    extracted = ids(i18n_script().extract_catalog())
    in_template = ids(template())
    assert extracted == in_template, (
        "messages.pot is out of date; run `.venv/bin/python scripts/i18n.py` "
        f"(new: {sorted(map(str, extracted - in_template))}, "
        f"gone: {sorted(map(str, in_template - extracted))})"
    )


def test_every_domain_message_is_marked_for_translation() -> None:
    missing = set(identifiers.ALL_MESSAGES) - ids(template())
    assert not missing, f"wrap these in N_ (anonsign.domain.messages): {sorted(missing)}"


def test_every_offered_language_has_a_catalog() -> None:
    assert sorted(TRANSLATED) == i18n_script().locales()
    assert set(i18n.NATIVE_NAMES) == set(i18n.LOCALES)


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_is_translated_with_the_same_placeholders(locale: str) -> None:
    catalog = po(locale)
    assert ids(catalog) == ids(template()), f"run `scripts/i18n.py update` for {locale}"
    assert not catalog.fuzzy
    problems = []
    for message in catalog:
        if not message.id:
            continue
        translated = forms(message.string)
        if message.fuzzy or not all(s.strip() for s in translated):
            problems.append(f"untranslated or fuzzy: {message.id!r}")
            continue
        wanted = placeholders(forms(message.id)[0])
        for text in translated:
            if placeholders(text) != wanted:
                problems.append(f"placeholders differ: {message.id!r} -> {text!r}")
    assert not problems, "\n".join(problems)


def test_turkmen_is_written_in_the_latin_alphabet() -> None:
    cyrillic = [m.string for m in po("tk") if m.id and CYRILLIC.search(str(m.string))]
    assert not cyrillic


# --- (b) the compiled catalogs match their sources --------------------------------------------


def mo_contents(data: bytes) -> tuple[dict[object, object], object]:
    """What a .mo file means: its messages and its plural rule (not Babel's version line)."""
    catalog = read_mo(io.BytesIO(data))
    entries = {frozen(m.id): frozen(m.string) for m in catalog if m.id}
    return entries, dict(catalog.mime_headers).get("Plural-Forms")


@pytest.mark.parametrize("locale", TRANSLATED)
def test_compiled_catalog_is_up_to_date(locale: str) -> None:
    script = i18n_script()
    shipped = script.po_path(locale).with_suffix(".mo")
    assert shipped.exists(), f"run `scripts/i18n.py compile` ({shipped} is missing)"
    fresh = script.render_mo(po(locale))
    assert mo_contents(fresh) == mo_contents(shipped.read_bytes()), (
        f"{shipped} does not match its .po; run `scripts/i18n.py compile`"
    )


# --- (c) choosing a language without JavaScript -----------------------------------------------


def html_of(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def page_language(html: str) -> str:
    match = re.search(r'<html lang="([^"]*)" dir="(ltr|rtl)">', html)
    assert match, "no <html lang dir>"
    return match.group(1)


def test_english_by_default_and_accept_language_is_ignored(
    client: FlaskClient, petition: Petition
) -> None:
    html = html_of(client.get(f"/p/{petition.slug}", headers={"Accept-Language": "ru, tk;q=0.9"}))
    assert page_language(html) == "en"
    assert "Sign this petition" in html


@pytest.mark.parametrize("locale", TRANSLATED)
def test_lang_parameter_renders_the_page_and_is_remembered(
    client: FlaskClient, petition: Petition, locale: str
) -> None:
    answer = client.get(f"/p/{petition.slug}?lang={locale}")
    html = html_of(answer)
    assert answer.status_code == 200
    assert f'<html lang="{locale}" dir="ltr">' in html
    for msgid in [
        "Sign this petition",
        "Your email address",
        "How organizers may contact you",
        "I want to sign this petition.",
        "This site keeps no record of who signed: no IP addresses, no names, no times.",
    ]:
        assert tr(locale, msgid) in html
    assert "Sign this petition" not in html
    # Remembered on the next pages, without the parameter.
    again = html_of(client.get(f"/p/{petition.slug}"))
    assert page_language(again) == locale
    assert tr(locale, "Sign this petition") in again
    index = html_of(client.get("/"))
    assert page_language(index) == locale
    assert tr(locale, "Petitions") in index


def test_known_translations_read_as_expected(client: FlaskClient, petition: Petition) -> None:
    ru = html_of(client.get(f"/p/{petition.slug}?lang=ru"))
    assert "Подписать петицию" in ru
    tk = html_of(client.get(f"/p/{petition.slug}?lang=tk"))
    assert "Bu petisiýa gol çekiň" in tk
    assert html_of(client.get("/?lang=en")).count("Petitions") >= 1


def test_every_page_offers_every_language_by_its_own_name(
    client: FlaskClient, petition: Petition
) -> None:
    for path in ["/", f"/p/{petition.slug}", "/no-such-page"]:
        html = html_of(client.get(path))
        for code, name in i18n.NATIVE_NAMES.items():
            link = f'<a href="{path}?lang={code}" lang="{code}" hreflang="{code}"'
            assert link in html, (path, code)
            assert f">{name}</a>" in html


def test_language_links_keep_only_the_path(client: FlaskClient, petition: Petition) -> None:
    html = html_of(client.get(f"/p/{petition.slug}?lang=ru&q=%3Cb%3Ereflected"))
    assert f'href="/p/{petition.slug}?lang=tk"' in html
    assert "reflected" not in html


@pytest.mark.parametrize("locale", TRANSLATED)
def test_signing_works_in_each_language(
    client: FlaskClient, service: Service, petition: Petition, locale: str
) -> None:
    client.get(f"/?lang={locale}")
    answer = sign(client, petition.slug, "olga@example.org", "Signal: @olga.01")
    html = html_of(answer)
    assert answer.status_code == 200
    assert page_language(html) == locale
    assert tr(locale, "Thank you") in html
    assert tr(locale, "Back to the petition") in html
    title = translations(locale).gettext("Your signature for “%(title)s” has been received.")
    assert str(escape(title % {"title": petition.title})) in html
    # The page answering the POST links each language to the petition page, not to the
    # POST-only address.
    assert f'href="/p/{petition.slug}?lang=en"' in html
    assert f"/p/{petition.slug}/sign?lang" not in html
    assert next(s.signatures for s in service.summaries() if s.petition.id == petition.id) == 1


def test_repeated_signature_gets_the_same_answer_in_another_language(
    client: FlaskClient, petition: Petition
) -> None:
    client.get(f"/p/{petition.slug}?lang=tk")
    answers = [
        sign(client, petition.slug, spelling, "contact")
        for spelling in ["pavel@example.org", "Pavel@example.org", "rosa@example.org"]
    ]
    assert len({a.data for a in answers}) == 1
    assert {a.status_code for a in answers} == {200}
    assert {a.headers.get("Set-Cookie") for a in answers} == {None}


@pytest.mark.parametrize(
    "value",
    [
        "xx",
        "",
        "RU",
        "ru_RU",
        "ru-RU",
        "en-US",
        "tk%00",
        "%00",
        "%ff%fe",
        "..%2F..%2Fetc%2Fpasswd",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "ru%0D%0ASet-Cookie:%20x=1",
        "x" * 5000,
        "ru&lang=",
    ],
    ids=lambda v: v[:24],
)
def test_unknown_lang_values_are_ignored(
    client: FlaskClient, petition: Petition, value: str
) -> None:
    fresh = client.get(f"/p/{petition.slug}", query_string=f"lang={value}")
    assert fresh.status_code == 200
    expected = "ru" if value.startswith("ru&") else "en"
    assert page_language(html_of(fresh)) == expected
    client.get(f"/p/{petition.slug}?lang=tk")
    after_choice = client.get(f"/p/{petition.slug}", query_string=f"lang={value}")
    assert after_choice.status_code == 200
    assert page_language(html_of(after_choice)) == ("ru" if expected == "ru" else "tk")
    assert "<script>" not in html_of(after_choice)


def test_the_choice_lives_in_the_one_session_cookie(
    client: FlaskClient, petition: Petition
) -> None:
    answer = client.get(f"/p/{petition.slug}?lang=ru")
    cookies = answer.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    assert cookies[0].startswith("anonsign=")
    assert "HttpOnly" in cookies[0]
    assert "SameSite=Strict" in cookies[0]
    # The same choice again does not rewrite the cookie.
    assert client.get("/?lang=ru").headers.getlist("Set-Cookie") == []


def test_error_pages_are_translated(client: FlaskClient, petition: Petition) -> None:
    missing = client.get("/no-such-page?lang=ru")
    assert missing.status_code == 404
    assert tr("ru", "This page does not exist.") in html_of(missing)
    no_petition = client.get("/p/no-such-petition")
    assert tr("ru", "There is no petition at this address.") in html_of(no_petition)
    rejected = client.post(
        f"/p/{petition.slug}/sign", data={"identifier": "a@example.org", "consent": "y"}
    )
    assert rejected.status_code == 400
    assert tr("ru", "This page is out of date.") in html_of(rejected)


# --- (d) what a signer must fix, in their language --------------------------------------------


def test_invalid_identifier_message_is_translated(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    client.get("/?lang=ru")
    answer = sign(client, petition.slug, "not-an-email", "keep me")
    html = html_of(answer)
    assert answer.status_code == 400
    assert tr("ru", identifiers.EMAIL_INVALID_MESSAGE) in html
    assert identifiers.EMAIL_INVALID_MESSAGE not in html
    assert 'value="not-an-email"' in html


@pytest.mark.parametrize(
    ("identifier", "contact", "consent", "msgid"),
    [
        ("+993 65 123456 ext. 12", "", True, identifiers.PHONE_EXTENSION_MESSAGE),
        ("+993 65 CALL ME", "", True, identifiers.PHONE_LETTERS_MESSAGE),
        (
            "+993 65 123456",
            "x" * 1023,
            True,
            "Your contact details are too long; please shorten them.",
        ),
        ("+993 65 123456", "a\u202eb", True, identifiers.CONTACT_BAD_CHARACTERS_MESSAGE),
        ("+993 65 123456", "", False, "Please tick the box to confirm that you want to sign."),
    ],
    ids=["extension", "letters", "contact-too-long", "contact-bidi", "no-consent"],
)
def test_other_refusals_are_translated_into_turkmen(
    client: FlaskClient,
    phone_petition: Petition,
    identifier: str,
    contact: str,
    consent: bool,
    msgid: str,
) -> None:
    client.get("/?lang=tk")
    answer = sign(client, phone_petition.slug, identifier, contact, consent=consent)
    assert answer.status_code == 400
    assert tr("tk", msgid) in html_of(answer)


def test_the_count_reads_in_the_page_language_with_its_links_intact(
    client: FlaskClient, petition: Petition
) -> None:
    html = html_of(client.get(f"/p/{petition.slug}?lang=ru"))
    assert (
        translations("ru").ngettext("%(num)d signature", "%(num)d signatures", 0) % {"num": 0}
        in html
    )
    assert f'<a href="/p/{petition.slug}/audit">{tr("ru", "How to check it")}</a>' in html
    audit = html_of(client.get(f"/p/{petition.slug}/audit"))
    assert tr("ru", "Check the count") in audit
    assert "<code>server.vkey</code>" in audit
    assert "<code>--previous " in audit
    assert "&lt;code&gt;" not in audit


# --- (e) words that frighten or mislead (docs/translation-review.md) ------------------------

#: What the December 2026 review of both catalogs found, and must not come back.
MISLEADING = {
    "tk": {
        "hasaba al": "what Turkmen interfaces say for registering someone; counting is sanamak",
        "golyň": "misspelt: the possessive of gol is goluňyz",
        "elinizden": "the Turkish spelling; Turkmen writes eliňizden",
        "barlag nokady": "reads as a police or border checkpoint",
        "haýyş": "a person's plea, not a request to a site",
    },
    "ru": {
        "учесть вас": "echoes «взять на учёт», being put on an official register",
        "учитывается": "the signature is counted, not the person",
        "односторонний код": "jargon nobody reading the form understands",
        "кто-либо": "stiff written register",
        "не с этого сайта": "reads as an attack to a signer on a stale page",
    },
}


def message_strings(locale: str) -> list[tuple[str, str]]:
    return [(str(forms(m.id)[0]), text) for m in po(locale) if m.id for text in forms(m.string)]


@pytest.mark.parametrize("locale", sorted(MISLEADING))
def test_words_the_review_found_misleading_are_gone(locale: str) -> None:
    found = [
        (word, why, msgid)
        for msgid, text in message_strings(locale)
        for word, why in MISLEADING[locale].items()
        if word in text.lower()
    ]
    assert not found, found


def test_the_turkmen_count_does_not_read_as_a_football_score() -> None:
    """A bare «125 gol» is how Turkmen papers report goals: «125 adam gol çekdi»."""
    count = next(m for m in po("tk") if forms(m.id)[0] == "%(num)d signature")
    assert all(text.endswith("adam gol çekdi") for text in forms(count.string)), count.string
    shown = translations("tk").ngettext("%(num)d signature", "%(num)d signatures", 125)
    assert shown % {"num": 125} == "125 adam gol çekdi"


def test_the_english_source_says_what_it_means() -> None:
    """The review's three rewordings of the English every translation starts from."""
    sources = {str(forms(m.id)[0]) for m in template() if m.id}
    # "no addresses" said nothing about which: the site keeps no network address.
    footer = "This site keeps no record of who signed: no IP addresses, no names, no times."
    assert footer in sources
    # "did not come from this site" read as an attack to a signer whose page was stale.
    assert not [s for s in sources if "did not come from this site" in s]
    assert "This page is out of date." in sources
    # "every counted signature is an entry in a public log" read as "my identity is public".
    entries = [s for s in sources if "signature is" in s and "entry" in s]
    assert entries
    assert all("anonymous entry" in s and "no name" in s for s in entries), entries
