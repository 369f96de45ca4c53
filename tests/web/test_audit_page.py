"""The count on a signer's page is one line; how to check it is a page for auditors.

Issue 9, item 6: between the petition's text and its form sat a paragraph with a shell
command, the word "offline" (wrong: that command fetches a URL) and links to raw text,
pushing the form screens down on a phone. The petition page now says one translated line
and links to ``/p/<slug>/audit``: the checkpoint and the key as readable text, and the
commands of ``anonsign audit`` as they really are -- run here, as written on the page,
against a real server.
"""

from __future__ import annotations

import html as html_module
import re
import shlex
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from babel.support import Translations
from click.testing import CliRunner
from flask.testing import FlaskClient
from markupsafe import escape

from anonsign import certificate
from anonsign.cli import main
from anonsign.cli.audit import audit as audit_cli
from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from anonsign.web import i18n
from tests.conftest import make_petition, sign
from tests.live import Browser, free_port, running

AUDIT_TEMPLATE = "src/anonsign/web/templates/public/audit.html"
COUNT_SECTION = re.compile(r'<section class="count" id="count">(.*?)</section>', re.S)
COMMAND_BLOCK = re.compile(r'<pre class="command"><code>(.*?)</code></pre>', re.S)
PREVIOUS = re.compile(r"<code>(--previous [^<]+)</code>")
ONE_LINE = "Anyone can check this count in a public log that says nothing about who signed."


@cache
def translations(locale: str) -> Translations:
    return Translations.load(str(i18n.TRANSLATIONS_DIR), [locale])


#: The witnesses' sentence shown only when one has cosigned (tests/witness shows it).
COSIGNED = certificate.COSIGNED


def tr(locale: str, msgid: str) -> str:
    """A message as the page shows it: Jinja's gettext takes translations as markup."""
    return str(translations(locale).gettext(msgid))


@cache
def template_catalog() -> Catalog:
    with (i18n.TRANSLATIONS_DIR / "messages.pot").open("rb") as fileobj:
        return read_po(fileobj)


def audit_page_messages() -> list[str]:
    """Every plain sentence of the auditor's page (those without a placeholder)."""
    return [
        m.id
        for m in template_catalog()
        if isinstance(m.id, str)
        and m.id
        and "%(" not in m.id
        and any(path == AUDIT_TEMPLATE for path, _ in m.locations)
    ]


def html_of(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.get_data(as_text=True)


def commands_on(page: str) -> list[list[str]]:
    """The command lines of the page, as a reader copies them, split as a shell does."""
    lines = [
        line
        for block in COMMAND_BLOCK.findall(page)
        for line in html_module.unescape(re.sub(r"</?span>", "", block)).splitlines()
        if line.strip()
    ]
    return [shlex.split(line) for line in lines]


# --- the signer's page ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_the_petition_page_says_one_line_about_the_count_and_shows_no_command(
    client: FlaskClient, petition: Petition, locale: str
) -> None:
    page = html_of(client, f"/p/{petition.slug}?lang={locale}")
    match = COUNT_SECTION.search(page)
    assert match, "no count on the petition page"
    count = match.group(1)
    assert count.count("<p") == 2  # the number, then one line
    assert tr(locale, ONE_LINE) in count
    assert f'<a href="/p/{petition.slug}/audit">{tr(locale, "How to check it")}</a>' in count
    for gone in ("anonsign audit", "<code", "<pre", "offline", "/checkpoint", "/.well-known/"):
        assert gone not in page, gone


def test_the_form_comes_right_after_the_text_and_the_count(
    client: FlaskClient, petition: Petition
) -> None:
    """Nothing but the count's two lines between the petition's text and its form."""
    page = html_of(client, f"/p/{petition.slug}?lang=tk")
    between = page[page.index('<div class="text">') : page.index('<section id="sign"')]
    assert len(re.sub(r"<[^>]+>|\s+", " ", between).split()) < 60, between


# --- the auditor's page -----------------------------------------------------------------------


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_the_auditors_page_is_in_the_readers_language(
    client: FlaskClient, service: Service, petition: Petition, locale: str
) -> None:
    for n in range(3):
        service.sign(petition.slug, f"a{n}@example.org", "")
    service.publish(petition.slug)
    page = html_of(client, f"/p/{petition.slug}/audit?lang={locale}")
    assert f'<html lang="{locale}"' in page
    messages = audit_page_messages()
    assert len(messages) >= 12
    # No witness is configured here: the page says so, and not the other branch.
    assert COSIGNED in messages
    assert tr(locale, COSIGNED) not in page
    for msgid in (m for m in messages if m != COSIGNED):
        assert tr(locale, msgid) in page, msgid
        if locale != i18n.DEFAULT_LOCALE:
            assert translations(locale).gettext(msgid) != msgid, f"untranslated: {msgid!r}"
    total = translations(locale).ngettext("%(num)d signature", "%(num)d signatures", 3)
    assert str(escape(total % {"num": 3})) in page
    assert petition.title in page


def test_the_auditors_page_shows_the_checkpoint_the_key_and_their_files(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    service.sign(petition.slug, "b@example.org", "")
    service.publish(petition.slug)
    page = html_of(client, f"/p/{petition.slug}/audit")
    checkpoint = client.get(f"/p/{petition.slug}/checkpoint").get_data(as_text=True)
    key = client.get("/.well-known/anonsign/key").get_data(as_text=True).strip()
    assert f'<pre class="note" id="checkpoint">{escape(checkpoint)}</pre>' in page
    assert f'<pre class="note" id="key">{escape(key)}</pre>' in page
    assert f'href="/p/{petition.slug}/checkpoint"' in page
    assert 'href="/.well-known/anonsign/key"' in page
    assert f'href="/p/{petition.slug}"' in page  # back to the petition


def test_the_commands_are_anonsign_audits_own(client: FlaskClient, petition: Petition) -> None:
    """Each line parses as the real command line does; `verify URL` is not called offline."""
    page = html_of(client, f"/p/{petition.slug}/audit")
    commands = commands_on(page)
    url = f"http://localhost/p/{petition.slug}"
    assert [c[:3] for c in commands] == [
        ["anonsign", "audit", "verify"],
        ["anonsign", "audit", "fetch"],
        ["anonsign", "audit", "verify"],
    ]
    assert commands[0][3:] == [url, "--key", "server.vkey"]
    folder = commands[1][commands[1].index("--out") + 1]
    assert commands[1][3:] == [url, "--out", folder]
    assert commands[2][3:] == [folder, "--key", "server.vkey"]
    previous = PREVIOUS.search(page)
    assert previous
    assert previous.group(1) == f"--previous {folder}/checkpoint"
    for command in commands:
        # Parsed by click as the shell would pass it (no network, no file read yet).
        audit_cli.commands[command[2]].make_context(command[2], command[3:])
    audit_cli.commands["verify"].make_context(
        "verify", [*commands[0][3:], *previous.group(1).split()]
    )
    assert "offline" not in page.lower()
    assert "This downloads the log from this site" in page


@pytest.mark.slow
def test_the_commands_as_written_on_the_page_check_a_real_server(
    tmp_path: Path,
    settings: Settings,
    service: Service,
    organizer: OrganizerSecretKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_petition(service, organizer, "audited-here", IdentifierKind.TEXT)
    port = free_port()
    env = {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": "1",
        "ANONSIGN_PUBLISHER_PERIOD": "0",
    }
    work = tmp_path / "auditor"
    work.mkdir()
    monkeypatch.chdir(work)
    runner = CliRunner()
    with running(["serve", "--port", str(port)], env, port, tmp_path / "server.log"):
        browser = Browser(f"http://127.0.0.1:{port}")
        for n in range(4):
            assert browser.sign("audited-here", f"ID-{n}")[0] == 200
        service.publish("audited-here")
        status, page = browser.request("/p/audited-here/audit?lang=tk")
        assert status == 200
        # "save the key as server.vkey", from the page's own link.
        status, key = browser.request("/.well-known/anonsign/key")
        assert status == 200
        (work / "server.vkey").write_text(key)
        outputs = []
        for command in commands_on(page):
            assert command[0] == "anonsign"
            result = runner.invoke(main, command[1:])
            assert result.exit_code == 0, (command, result.output)
            outputs.append(result.output)
        assert [o.startswith("OK: 4 distinct entries") for o in outputs] == [True, False, True]
        # "Next time, add --previous …/checkpoint": after more signatures, it proves growth.
        previous = PREVIOUS.search(page)
        assert previous
        assert browser.sign("audited-here", "ID-new")[0] == 200
        service.publish("audited-here")
        again = runner.invoke(main, commands_on(page)[0][1:] + shlex.split(previous.group(1)))
        assert again.exit_code == 0, again.output
        assert "OK: 5 distinct entries" in again.output
        assert "consistent with the previous checkpoint of size 4" in again.output


def test_the_auditors_page_of_a_closed_petition_shows_its_final_count(
    client: FlaskClient, service: Service, organizer: OrganizerSecretKey
) -> None:
    make_petition(service, organizer, "finished")
    sign(client, "finished", "c@example.org")
    service.close("finished")
    page = html_of(client, "/p/finished/audit")
    assert ">1 signature<" in page
    assert client.get("/p/nope/audit").status_code == 404
