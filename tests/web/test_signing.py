"""The sign path over HTTP: pages, equivalent spellings, identical answers, refusals."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from anonsign.domain.petitions import Petition
from anonsign.service import Service
from tests.conftest import csrf_token, sign


def count(service: Service, petition: Petition) -> int:
    return next(s.signatures for s in service.summaries() if s.petition.id == petition.id)


def contacts(service: Service, petition: Petition) -> int:
    return next(s.contacts for s in service.summaries() if s.petition.id == petition.id)


def test_index_lists_open_petitions(client: FlaskClient, petition: Petition) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert f'href="/p/{petition.slug}"' in page.get_data(as_text=True)


def test_petition_page_has_the_form(client: FlaskClient, petition: Petition) -> None:
    html = client.get(f"/p/{petition.slug}").get_data(as_text=True)
    assert "<strong>every</strong>" in html  # Markdown rendered
    for field in ('name="identifier"', 'name="contact"', 'name="consent"', 'name="csrf_token"'):
        assert field in html
    assert 'action="/p/free-press/sign?lang=en#sign"' in html  # the form carries its language
    assert 'href="#sign"' in html  # the form is one tap away on a phone


def test_new_signature_is_accepted(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    answer = sign(client, petition.slug, "alice@example.org", "Signal: @alice.01")
    assert answer.status_code == 200
    assert "Thank you" in answer.get_data(as_text=True)
    assert count(service, petition) == 1
    assert contacts(service, petition) == 1


@pytest.mark.parametrize(
    "spellings",
    [
        ["alice@example.org", "  Alice@Example.ORG ", "alice+petitions@example.org"],
        ["ALICE@EXAMPLE.ORG", "ａｌｉｃｅ@example.org"],
    ],
    ids=["case-space-tag", "fullwidth"],
)
def test_equivalent_emails_count_once(
    client: FlaskClient, service: Service, petition: Petition, spellings: list[str]
) -> None:
    for spelling in spellings:
        assert sign(client, petition.slug, spelling).status_code == 200
    assert count(service, petition) == 1


def test_equivalent_phones_count_once(
    client: FlaskClient, service: Service, phone_petition: Petition
) -> None:
    for spelling in ["+993 65 123456", "0099365123456", "tel:+99365123456", "+993-65-12-34-56"]:
        assert sign(client, phone_petition.slug, spelling).status_code == 200
    assert count(service, phone_petition) == 1


def test_distinct_identifiers_count_separately(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    for identifier in ["alice@example.org", "bob@example.org", "a.lice@example.org"]:
        assert sign(client, petition.slug, identifier).status_code == 200
    assert count(service, petition) == 3


def _comparable(response: TestResponse) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.items() if k != "Date"]
    body = re.sub(rb'name="csrf_token" type="hidden" value="[^"]+"', b"TOKEN", response.data)
    return response.status_code, headers, body


def test_repeated_signature_gets_the_same_answer_as_a_new_one(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    first = sign(client, petition.slug, "carol@example.org", "carol's contact")
    repeat = sign(client, petition.slug, "Carol@example.org", "carol's contact")
    other = sign(client, petition.slug, "dave@example.org", "carol's contact")
    assert first.status_code == 200
    assert _comparable(first) == _comparable(repeat) == _comparable(other)
    assert count(service, petition) == 2


def test_consent_is_required(client: FlaskClient, service: Service, petition: Petition) -> None:
    answer = sign(client, petition.slug, "erin@example.org", consent=False)
    assert answer.status_code == 400
    assert "tick the box" in answer.get_data(as_text=True)
    assert count(service, petition) == 0


def test_invalid_identifier_says_what_to_fix_and_keeps_the_input(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    answer = sign(client, petition.slug, "not-an-email", "keep me")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert 'class="error"' in html
    assert 'value="not-an-email"' in html
    assert "keep me</textarea>" in html
    assert count(service, petition) == 0


def test_too_long_contact_is_refused_before_anything_is_kept(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    answer = sign(client, petition.slug, "frank@example.org", "x" * 1023)
    assert answer.status_code == 400
    assert "too long" in answer.get_data(as_text=True)
    assert count(service, petition) == 0


def test_closed_petition_shows_no_form_and_refuses_signatures(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    token = csrf_token(client.get(f"/p/{petition.slug}").get_data(as_text=True))
    service.close(petition.slug)
    html = client.get(f"/p/{petition.slug}").get_data(as_text=True)
    assert "closed" in html
    assert 'name="identifier"' not in html
    answer = client.post(
        f"/p/{petition.slug}/sign",
        data={"csrf_token": token, "identifier": "gina@example.org", "consent": "y"},
    )
    assert answer.status_code == 410
    assert count(service, petition) == 0


def test_unknown_petition_is_a_404(client: FlaskClient, petition: Petition) -> None:
    assert client.get("/p/no-such-petition").status_code == 404
    token = csrf_token(client.get(f"/p/{petition.slug}").get_data(as_text=True))
    answer = client.post(
        "/p/no-such-petition/sign",
        data={"csrf_token": token, "identifier": "a@example.org", "consent": "y"},
    )
    assert answer.status_code == 404
    assert "no petition" in answer.get_data(as_text=True).lower()


def test_a_petition_rewrapped_by_another_host_answers_503_not_500(
    client: FlaskClient, service: Service, petition: Petition, caplog: pytest.LogCaptureFixture
) -> None:
    # What another host's `petition close` does to this host's database: every open
    # pepper rewrapped under a master key this host does not hold yet.
    from anonsign.crypto.master import ServerKeys, unwrap_pepper, wrap_pepper
    from anonsign.storage.repository import Repository

    other_host = ServerKeys.generate().master
    with service.db.writing() as session:
        Repository(session).rewrap_peppers(
            lambda pid, wrapped: wrap_pepper(
                other_host, pid, unwrap_pepper(service._keys.master, pid, wrapped)
            )
        )
    answer = sign(client, petition.slug, "alice@example.org")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "60"
    assert "Nothing was signed" in answer.get_data(as_text=True)
    assert "copy its new sealed master key here" in caplog.text
    assert count(service, petition) == 0
