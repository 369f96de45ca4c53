"""Sign forms cannot be replayed or scripted cheaply (web.form_guard, crypto.form_token).

One client with one CSRF token used to post about five fake identifiers a second. Now
every rendering of the form carries a token that binds the petition and the moment it
was rendered, is accepted once (by any worker sharing the database), no sooner than
``ANONSIGN_FORM_MIN_SECONDS`` and no later than ``ANONSIGN_FORM_MAX_SECONDS``; a filled
honeypot is refused too. Every refusal is the same page, counts nothing, hashes nothing
and stores nothing. These tests run the real two-second default on a clock of their own
(the suite's ``settings`` turn the minimum off so that ``sign`` need not wait).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, inspect, text
from werkzeug.test import TestResponse

import anonsign.web
from anonsign.app import create_app
from anonsign.config import (
    DEFAULT_FORM_MAX_SECONDS,
    DEFAULT_FORM_MIN_SECONDS,
    Settings,
    load_settings,
)
from anonsign.crypto import dedup
from anonsign.crypto.form_token import HOUR_MS, PETITION_ID_SIZE, FormTokens
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.petitions import Petition
from anonsign.errors import ConfigError
from anonsign.service import Service
from anonsign.web.form_guard import EXTENSION
from tests.conftest import (
    CSRF_INPUT,
    FORM_TOKEN_INPUT,
    HONEYPOT,
    form_fields,
    make_petition,
    page_fields,
)

#: A fixed start, so that bounds can be set to the millisecond (nanoseconds since the epoch).
T0 = 1_800_000_000 * 10**9
SECOND = 10**9
MS = 10**6
REFUSED = "This form has expired or was already used"
STATIC = Path(anonsign.web.__file__).parent / "static"


class Clock:
    """The form tokens' clock, moved by the test instead of by sleeping."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float = 0, ms: int = 0) -> None:
        self.now += round(seconds * SECOND) + ms * MS


@pytest.fixture
def clock() -> Clock:
    return Clock()


def real_window_app(settings: Settings, service: Service, clock: Clock) -> Flask:
    """The app with the real defaults (two seconds to six hours), on the test's clock."""
    app = create_app(
        settings.with_overrides(
            form_min_seconds=DEFAULT_FORM_MIN_SECONDS, form_max_seconds=DEFAULT_FORM_MAX_SECONDS
        ),
        service=service,
    )
    app.config["TESTING"] = True
    tokens: FormTokens = app.extensions[EXTENSION]
    tokens.clock = clock
    return app


@pytest.fixture
def real_app(settings: Settings, service: Service, clock: Clock) -> Flask:
    return real_window_app(settings, service, clock)


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every dedup-key derivation (the Argon2id step), by the kind of identifier."""
    calls: list[str] = []
    real = dedup.dedup_key

    def counting(**kwargs: Any) -> bytes:
        calls.append(kwargs["kind"])
        return real(**kwargs)

    monkeypatch.setattr(dedup, "dedup_key", counting)
    return calls


def rows(service: Service, table: str) -> list[tuple[Any, ...]]:
    with service.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table}"))]  # noqa: S608


def pending(service: Service) -> int:
    return len(rows(service, "pending_signatures"))


def post(client: FlaskClient, slug: str, fields: dict[str, str], **form: str) -> TestResponse:
    data = fields | {"identifier": "someone@example.org", "consent": "y"} | form
    return client.post(f"/p/{slug}/sign", data=data)


def assert_refused(answer: TestResponse) -> None:
    """The petition page again, with the one message and a fresh form."""
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400, answer.status_code
    assert REFUSED in html
    assert 'class="error" role="alert"' in html
    assert FORM_TOKEN_INPUT.search(html), "the refusal carries a fresh form"


def without_tokens(answer: TestResponse) -> tuple[int, list[tuple[str, str]], str]:
    html = answer.get_data(as_text=True)
    html = CSRF_INPUT.sub("CSRF", FORM_TOKEN_INPUT.sub("FORM", html))
    headers = [(k, v) for k, v in answer.headers.items() if k != "Date"]
    return answer.status_code, headers, html


def nonce_of(token: str) -> bytes:
    return base64.urlsafe_b64decode(token)[PETITION_ID_SIZE + 8 : PETITION_ID_SIZE + 24]


# --- replay -------------------------------------------------------------------------------


def test_a_replayed_form_is_refused_and_counts_nothing(
    real_app: Flask, clock: Clock, service: Service, petition: Petition, argon2_calls: list[str]
) -> None:
    client = real_app.test_client()
    fields = page_fields(client, petition.slug)
    clock.advance(5)
    assert post(client, petition.slug, fields, identifier="first@example.org").status_code == 200
    assert (argon2_calls, pending(service)) == (["email"], 1)

    # The same form again, with another identifier, as a script with one page would.
    again = post(client, petition.slug, fields, identifier="second@example.org")
    assert_refused(again)
    assert (argon2_calls, pending(service)) == (["email"], 1)
    assert form_fields(again.get_data(as_text=True))["form_token"] != fields["form_token"]


def test_a_form_replayed_to_another_worker_is_refused(
    settings: Settings,
    service: Service,
    app: Flask,
    petition: Petition,
    argon2_calls: list[str],
) -> None:
    # A second server process: its own app, service and connections, the same database.
    other_service = Service.open(settings)
    try:
        other = create_app(settings, service=other_service)
        other.config["TESTING"] = True
        first, second = app.test_client(), other.test_client()
        fields = page_fields(first, petition.slug)
        assert post(first, petition.slug, fields).status_code == 200
        cookie = first.get_cookie("anonsign")
        assert cookie is not None
        second.set_cookie("anonsign", cookie.value)  # the same browser, another worker

        assert_refused(post(second, petition.slug, fields, identifier="else@example.org"))
        assert (len(argon2_calls), pending(service)) == (1, 1)
        # The other worker does accept a form it has not seen used.
        fresh = page_fields(first, petition.slug)
        assert post(second, petition.slug, fresh, identifier="else@example.org").status_code == 200
        assert (len(argon2_calls), pending(service)) == (2, 2)
    finally:
        other_service.close_connections()


def test_the_form_is_spent_whatever_the_identifier(
    client: FlaskClient, service: Service, petition: Petition, argon2_calls: list[str]
) -> None:
    posts = {
        "new": ({"identifier": "new@example.org"}, 200),
        "repeat": ({"identifier": "NEW@example.org"}, 200),
        "invalid": ({"identifier": "not-an-email"}, 400),
        "no consent": ({"consent": ""}, 400),
    }
    used = {}
    for name, (form, status) in posts.items():
        used[name] = page_fields(client, petition.slug)
        answer = post(client, petition.slug, used[name], **form)
        assert answer.status_code == status, name
        assert REFUSED not in answer.get_data(as_text=True), name
    assert len(rows(service, "used_form_nonces")) == len(posts)
    hashed = len(argon2_calls)
    for fields in used.values():
        assert_refused(post(client, petition.slug, fields, identifier="later@example.org"))
    assert len(argon2_calls) == hashed
    assert pending(service) == 2


# --- the time window --------------------------------------------------------------------------


def test_a_form_posted_sooner_than_the_minimum_is_refused_and_at_it_accepted(
    real_app: Flask, clock: Clock, service: Service, petition: Petition, argon2_calls: list[str]
) -> None:
    assert DEFAULT_FORM_MIN_SECONDS == 2
    client = real_app.test_client()
    fields = page_fields(client, petition.slug)
    clock.advance(ms=1999)
    too_soon = post(client, petition.slug, fields)
    assert_refused(too_soon)
    # The page names no threshold: the message is the one every refusal gets.
    assert "second" not in too_soon.get_data(as_text=True).lower()
    assert (argon2_calls, pending(service), rows(service, "used_form_nonces")) == ([], 0, [])
    # A refused post spent nothing: the person simply posts again, and at exactly two
    # seconds the same form is accepted.
    clock.advance(ms=1)
    assert post(client, petition.slug, fields).status_code == 200
    assert (len(argon2_calls), pending(service)) == (1, 1)


def test_a_form_older_than_the_maximum_is_refused_and_at_it_accepted(
    real_app: Flask, clock: Clock, service: Service, petition: Petition, argon2_calls: list[str]
) -> None:
    client = real_app.test_client()
    on_time, late = page_fields(client, petition.slug), page_fields(client, petition.slug)
    clock.advance(DEFAULT_FORM_MAX_SECONDS)
    assert post(client, petition.slug, on_time).status_code == 200  # exactly six hours
    clock.advance(ms=1)
    assert_refused(post(client, petition.slug, late, identifier="late@example.org"))
    assert (len(argon2_calls), pending(service)) == (1, 1)


def test_a_form_for_another_petition_is_refused(
    client: FlaskClient,
    service: Service,
    organizer: OrganizerSecretKey,
    petition: Petition,
    argon2_calls: list[str],
) -> None:
    other = make_petition(service, organizer, "other-cause")
    fields = page_fields(client, petition.slug)
    refused = post(client, other.slug, fields)
    assert_refused(refused)
    assert (argon2_calls, pending(service), rows(service, "used_form_nonces")) == ([], 0, [])
    assert other.title in refused.get_data(as_text=True)  # the page of the petition posted to
    # Its own form signs it; the first petition's form still signs the first.
    assert post(client, other.slug, page_fields(client, other.slug)).status_code == 200
    assert post(client, petition.slug, fields).status_code == 200


def test_a_missing_or_forged_form_token_is_refused(
    client: FlaskClient, service: Service, petition: Petition, argon2_calls: list[str]
) -> None:
    fields = page_fields(client, petition.slug)
    token = fields["form_token"]
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in ["", "x", token + "A", flipped, token[:50] + "=" * 46]:
        assert_refused(post(client, petition.slug, fields | {"form_token": bad}))
    missing = {k: v for k, v in fields.items() if k != "form_token"}
    assert_refused(post(client, petition.slug, missing))
    assert (argon2_calls, pending(service), rows(service, "used_form_nonces")) == ([], 0, [])


# --- the honeypot ----------------------------------------------------------------------------


def test_the_honeypot_is_hidden_by_the_stylesheet_and_labelled_for_screen_readers(
    client: FlaskClient, petition: Petition
) -> None:
    html = client.get(f"/p/{petition.slug}").get_data(as_text=True)
    field = re.search(r'<p class="hp">(.*?)</p>', html, re.DOTALL)
    assert field, "the honeypot is in the form"
    assert '<label for="website">Leave this field empty</label>' in field.group(1)
    assert (
        '<input id="website" name="website" type="text" value="" tabindex="-1" '
        'autocomplete="off">' in field.group(1)
    )
    form = html[html.index("<form") : html.index("</form>")]
    assert field.group(0) in form
    css = (STATIC / "style.css").read_text(encoding="utf-8")
    rule = re.search(r"\.hp \{([^}]*)\}", css)
    assert rule, "the stylesheet hides it"
    assert "position: absolute" in rule.group(1)
    assert "-10000px" in rule.group(1)


def test_a_filled_honeypot_is_refused_like_an_expired_form(
    real_app: Flask, clock: Clock, service: Service, petition: Petition, argon2_calls: list[str]
) -> None:
    client = real_app.test_client()
    form = {"identifier": "bot@example.org", "contact": "spam", "consent": "y"}
    trap, expired = page_fields(client, petition.slug), page_fields(client, petition.slug)
    clock.advance(30)
    honeypot = post(client, petition.slug, trap, **form, **{HONEYPOT: "http://spam.example"})
    clock.advance(DEFAULT_FORM_MAX_SECONDS)
    too_old = post(client, petition.slug, expired, **form)
    assert_refused(honeypot)
    assert without_tokens(honeypot) == without_tokens(too_old)
    assert "spam.example" not in honeypot.get_data(as_text=True)
    assert (argon2_calls, pending(service), rows(service, "used_form_nonces")) == ([], 0, [])
    assert sum(s.contacts for s in service.summaries()) == 0


def test_a_person_signs_with_the_fresh_form_of_a_refusal(
    real_app: Flask, clock: Clock, service: Service, petition: Petition
) -> None:
    client = real_app.test_client()
    fields = page_fields(client, petition.slug)
    refused = post(client, petition.slug, fields)  # at once: too soon for a person
    assert_refused(refused)
    html = refused.get_data(as_text=True)
    assert 'value="someone@example.org"' in html  # what they typed is still there
    clock.advance(DEFAULT_FORM_MIN_SECONDS)
    assert post(client, petition.slug, form_fields(html)).status_code == 200
    assert pending(service) == 1


# --- what is kept ------------------------------------------------------------------------------


def test_used_nonces_are_random_nonces_and_hour_rounded_expiries_only(
    real_app: Flask, clock: Clock, service: Service, petition: Petition
) -> None:
    client = real_app.test_client()
    tokens = []
    for i, identifier in enumerate(["a@example.org", "a@example.org", "b@example.org", "bad"]):
        fields = page_fields(client, petition.slug)
        issued_ms = clock.now // MS
        clock.advance(3 + 700 * i)
        post(client, petition.slug, fields, identifier=identifier, contact=f"contact {i}")
        tokens.append((nonce_of(fields["form_token"]), issued_ms))

    columns = {c["name"] for c in inspect(service.db.engine).get_columns("used_form_nonces")}
    assert columns == {"nonce", "expires_hour"}
    stored = dict(rows(service, "used_form_nonces"))
    # Exactly the tokens' random nonces, each with the first hour in which its token is
    # too old: nothing finer than an hour, nothing of the identifier or the post's time.
    assert {bytes(n): h for n, h in stored.items()} == {
        nonce: (issued_ms + DEFAULT_FORM_MAX_SECONDS * 1000) // HOUR_MS + 1
        for nonce, issued_ms in tokens
    }
    assert len({n for n, _ in tokens}) == len(tokens)
    # No key shared with a signature or a contact.
    kept = b"".join(bytes(v) for t in ("pending_signatures", "pending_contacts")
                    for row in rows(service, t) for v in row[1:])  # fmt: skip
    assert not any(nonce in kept for nonce, _ in tokens)


def test_expired_nonces_are_forgotten_and_their_forms_stay_refused(
    real_app: Flask, clock: Clock, service: Service, petition: Petition
) -> None:
    client = real_app.test_client()
    old = page_fields(client, petition.slug)
    clock.advance(5)
    assert post(client, petition.slug, old).status_code == 200
    ((_, expires_hour),) = rows(service, "used_form_nonces")

    # In the hour the old form can no longer be accepted, the next post forgets its nonce.
    clock.now = expires_hour * 3600 * SECOND
    fresh = page_fields(client, petition.slug)
    clock.advance(5)
    assert post(client, petition.slug, fresh, identifier="new@example.org").status_code == 200
    assert [bytes(n) for n, _ in rows(service, "used_form_nonces")] == [
        nonce_of(fresh["form_token"])
    ]
    assert_refused(post(client, petition.slug, old, identifier="replay@example.org"))
    assert pending(service) == 2


def test_the_background_publisher_forgets_expired_nonces(service: Service) -> None:
    hour = 487_000  # any hour before now
    with service.db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO used_form_nonces VALUES (:n, :h)"),
            [{"n": b"e" * 16, "h": hour}, {"n": b"f" * 16, "h": 10**7}],
        )
    service.publish_due()
    assert [bytes(n) for n, _ in rows(service, "used_form_nonces")] == [b"f" * 16]


def test_the_nonce_and_the_signature_are_never_written_in_one_transaction(
    client: FlaskClient, service: Service, petition: Petition, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    def on_statement(*args: Any) -> None:
        statement = args[2].lower()
        for table in ("used_form_nonces", "pending_signatures"):
            if statement.startswith("insert") and table in statement:
                events.append(table)

    real = dedup.dedup_key

    def hashing(**kwargs: Any) -> bytes:
        events.append("argon2")
        return real(**kwargs)

    monkeypatch.setattr(dedup, "dedup_key", hashing)
    fields = page_fields(client, petition.slug)
    engine = service.db.engine
    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", on_statement),
        ("commit", lambda *_: events.append("commit")),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        assert post(client, petition.slug, fields).status_code == 200
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)
    # What happened between one commit and the next (reading transactions write nothing).
    between = [group.strip(",").split(",") for group in ",".join(events).split("commit")]
    # The nonce is committed on its own, before the identifier is hashed; the signature
    # follows in a transaction of its own.
    assert [g for g in between if g != [""]] == [
        ["used_form_nonces"],
        ["argon2", "pending_signatures"],
    ]


# --- settings ----------------------------------------------------------------------------------


def test_the_window_is_read_from_the_environment_and_checked(tmp_path: Path) -> None:
    base = {"ANONSIGN_INSTANCE": str(tmp_path)}
    defaults = load_settings(base)
    assert (defaults.form_min_seconds, defaults.form_max_seconds) == (2, 6 * 3600)
    chosen = load_settings(
        base | {"ANONSIGN_FORM_MIN_SECONDS": "0", "ANONSIGN_FORM_MAX_SECONDS": "86400"}
    )
    assert (chosen.form_min_seconds, chosen.form_max_seconds) == (0, 86400)
    for env, name in [
        ({"ANONSIGN_FORM_MIN_SECONDS": "-1"}, "FORM_MIN_SECONDS"),
        ({"ANONSIGN_FORM_MAX_SECONDS": "10"}, "FORM_MAX_SECONDS"),
        ({"ANONSIGN_FORM_MIN_SECONDS": "600", "ANONSIGN_FORM_MAX_SECONDS": "600"}, "less than"),
        ({"ANONSIGN_FORM_MIN_SECONDS": "two"}, "FORM_MIN_SECONDS"),
    ]:
        with pytest.raises(ConfigError, match=name):
            load_settings(base | env)


def test_the_csrf_token_lasts_as_long_as_the_form(settings: Settings, service: Service) -> None:
    app = create_app(settings.with_overrides(form_max_seconds=12 * 3600), service=service)
    assert app.config["WTF_CSRF_TIME_LIMIT"] == 12 * 3600


def test_the_form_token_sets_no_second_cookie(client: FlaskClient, petition: Petition) -> None:
    page = client.get(f"/p/{petition.slug}")
    fields = form_fields(page.get_data(as_text=True))
    answers = [page, post(client, petition.slug, fields), post(client, petition.slug, fields)]
    cookies = [c for a in answers for c in a.headers.getlist("Set-Cookie")]
    assert cookies, "the session cookie is set"
    assert all(c.startswith("anonsign=") for c in cookies), cookies
