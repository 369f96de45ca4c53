"""The header set on every route and every status (security.md T-C1, T-C6, T-E5).

Every answer -- pages, errors, the public log, the stylesheet -- carries exactly the
headers of ``anonsign.web.headers``, no validator (ETag, Last-Modified) and at most the
one session cookie. The route inventory is an explicit allow-list: a new route fails
here until someone has checked that it is not a lookup by identifier ("did X sign?",
"which entry is X's?") or a debug page (SECURITY.md, "no membership oracle").
"""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from anonsign.app import create_app
from anonsign.config import Settings, load_settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import Petition, Recipient
from anonsign.errors import ConfigError
from anonsign.onion import v3_onion_address
from anonsign.service import Service
from anonsign.web.headers import SECURITY_HEADERS
from tests.conftest import page_fields, sign
from tests.live import free_port, running

# Written out, not imported: a change to web/headers.py must change this test too.
EXPECTED_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: Everything else an answer may carry. Not here, so never sent: ETag, Last-Modified,
#: Accept-Ranges, Expires, X-Powered-By, Access-Control-*, Location (no redirects).
OTHER_ALLOWED = {"Content-Type", "Content-Length", "Set-Cookie", "Vary", "Allow"}
STATIC_ALLOWED = {"Content-Disposition"}  # "inline; filename=style.css"

GET = frozenset({"GET", "HEAD", "OPTIONS"})
POST = frozenset({"POST", "OPTIONS"})

#: The whole public surface. Reviewed: none of these tells whether an identifier signed.
ROUTES = {
    ("/", "public.index", GET),
    ("/p/<slug>", "public.petition", GET),
    ("/p/<slug>/sign", "public.sign", POST),
    ("/p/<slug>/audit", "public.audit", GET),
    ("/.well-known/anonsign/key", "log.verifier_key", GET),
    ("/p/<slug>/checkpoint", "log.checkpoint", GET),
    ("/p/<slug>/tile/<path:rest>", "log.tile", GET),
    ("/p/<slug>/log/leaves", "log.leaves", GET),
    ("/p/<slug>/log/inclusion", "log.inclusion", GET),
    ("/p/<slug>/log/consistency", "log.consistency", GET),
    ("/static/<path:filename>", "static", GET),
}

ONION = v3_onion_address(bytes(range(32)))
SET_COOKIE = re.compile(r"^anonsign=[^;]+; HttpOnly; Path=/; SameSite=Strict$")


#: The one answer that may be cached: a log tile (tlog-tiles: immutable), and only a 200.
TILE_CACHE_CONTROL = "public, max-age=31536000, immutable"


def assert_headers(
    answer: TestResponse, *, onion: bool = False, static: bool = False, tile: bool = False
) -> None:
    """The exact header set of web/headers.py, and a cookie only as the session cookie."""
    names = set(answer.headers.keys())
    expected = EXPECTED_HEADERS | ({"Cache-Control": TILE_CACHE_CONTROL} if tile else {})
    for name, value in expected.items():
        assert answer.headers.getlist(name) == [value], (name, answer.headers.getlist(name))
    allowed = set(EXPECTED_HEADERS) | OTHER_ALLOWED
    if static:
        allowed |= STATIC_ALLOWED
    if onion:
        allowed.add("Onion-Location")
    assert names <= allowed, f"unexpected headers: {sorted(names - allowed)}"
    for cookie in answer.headers.getlist("Set-Cookie"):
        # One name, HttpOnly, SameSite=Strict, and a session cookie: no Expires/Max-Age.
        assert SET_COOKIE.match(cookie), cookie


def test_the_expected_headers_are_the_ones_web_headers_sends() -> None:
    assert EXPECTED_HEADERS == SECURITY_HEADERS


def test_route_inventory_is_the_reviewed_allow_list(app: Flask) -> None:
    routes = {(r.rule, r.endpoint, frozenset(r.methods or ())) for r in app.url_map.iter_rules()}
    assert routes == ROUTES, (
        "the routes changed: review the new one (no lookup by identifier, no debug "
        f"route, security.md T-E5), then update ROUTES. Added: {routes - ROUTES}, "
        f"gone: {ROUTES - routes}"
    )


# --- every route, with valid and invalid parameters, and every status ----------------------


@dataclass
class World:
    """An instance with an open, a phone, a closed and a published petition, and a log."""

    client: FlaskClient
    service: Service
    open: Petition
    closed: Petition
    logged: Petition
    entry: str  # a published log entry of the logged petition (base64url)


@pytest.fixture
def world(
    client: FlaskClient,
    service: Service,
    petition: Petition,
    phone_petition: Petition,
    organizer: OrganizerSecretKey,
) -> World:
    recipients = [Recipient("alice", organizer.public_key())]
    closed = service.create_petition(
        slug="closed-one",
        title="Closed",
        text="Over.",
        identifier_kind=IdentifierKind.EMAIL,
        recipients=recipients,
    )
    service.close(closed.slug)
    logged = service.create_petition(
        slug="logged",
        title="Logged",
        text="Two signatures, published.",
        identifier_kind=IdentifierKind.EMAIL,
        recipients=recipients,
    )
    for i in range(2):
        assert sign(client, logged.slug, f"r{i}@example.org").status_code == 200
    service.publish(logged.slug)
    # An entry as an auditor gets it: from the public leaves, never from a signer's page.
    entry = base64.urlsafe_b64encode(service.leaves(logged.slug, 0, 1)[0]).decode().rstrip("=")
    return World(client, service, petition, service.petition(closed.slug), logged, entry)


def _fields(w: World, slug: str | None = None) -> dict[str, str]:
    """A fresh form's tokens; for a petition without a form, the open petition's."""
    return page_fields(w.client, slug if slug in {w.open.slug, w.logged.slug} else w.open.slug)


def _post_sign(w: World, slug: str, **form: str) -> TestResponse:
    data = _fields(w, slug) | {"identifier": "case@example.org", "consent": "y"} | form
    return w.client.post(f"/p/{slug}/sign", data=data)


Request = Callable[[World], TestResponse]

#: (endpoint, case name, request, expected status). Every endpoint has valid and invalid cases.
CASES: list[tuple[str, str, Request, int]] = [
    ("public.index", "get", lambda w: w.client.get("/"), 200),
    ("public.index", "lang", lambda w: w.client.get("/?lang=ru"), 200),
    ("public.index", "bad-lang", lambda w: w.client.get("/?lang=%ff%00"), 200),
    ("public.index", "head", lambda w: w.client.head("/"), 200),
    ("public.index", "options", lambda w: w.client.options("/"), 405),
    ("public.index", "post", lambda w: w.client.post("/"), 405),
    ("public.index", "trace", lambda w: w.client.open("/", method="TRACE"), 405),
    ("public.petition", "get", lambda w: w.client.get(f"/p/{w.open.slug}?lang=tk"), 200),
    ("public.petition", "closed", lambda w: w.client.get(f"/p/{w.closed.slug}"), 200),
    ("public.petition", "unknown", lambda w: w.client.get("/p/no-such-petition"), 404),
    ("public.petition", "odd-slug", lambda w: w.client.get("/p/%00%ff..%2f"), 404),
    ("public.petition", "put", lambda w: w.client.put(f"/p/{w.open.slug}"), 405),
    ("public.petition", "delete", lambda w: w.client.delete(f"/p/{w.open.slug}"), 405),
    ("public.petition", "patch", lambda w: w.client.patch(f"/p/{w.open.slug}"), 405),
    ("public.audit", "get", lambda w: w.client.get(f"/p/{w.logged.slug}/audit?lang=ru"), 200),
    ("public.audit", "closed", lambda w: w.client.get(f"/p/{w.closed.slug}/audit"), 200),
    ("public.audit", "unknown", lambda w: w.client.get("/p/no-such-petition/audit"), 404),
    ("public.audit", "post", lambda w: w.client.post(f"/p/{w.open.slug}/audit"), 405),
    ("public.sign", "signed", lambda w: _post_sign(w, w.open.slug), 200),
    (
        "public.sign",
        "repeat",
        lambda w: _post_sign(w, w.logged.slug, identifier="r0@example.org"),
        200,
    ),
    (
        "public.sign",
        "bad-identifier",
        lambda w: _post_sign(w, w.open.slug, identifier="not an email"),
        400,
    ),
    ("public.sign", "no-consent", lambda w: _post_sign(w, w.open.slug, consent=""), 400),
    (
        "public.sign",
        "csrf-missing",
        lambda w: w.client.post(f"/p/{w.open.slug}/sign", data={"identifier": "a@example.org"}),
        400,
    ),
    ("public.sign", "csrf-forged", lambda w: _post_sign(w, w.open.slug, csrf_token="x"), 400),
    ("public.sign", "form-token-forged", lambda w: _post_sign(w, w.open.slug, form_token="x"), 400),
    ("public.sign", "honeypot", lambda w: _post_sign(w, w.open.slug, website="x"), 400),
    (
        "public.sign",
        "foreign-origin",
        lambda w: w.client.post(
            f"/p/{w.open.slug}/sign",
            data=_fields(w) | {"identifier": "a@example.org", "consent": "y"},
            headers={"Origin": "http://evil.onion"},
        ),
        400,
    ),
    ("public.sign", "closed", lambda w: _post_sign(w, w.closed.slug), 410),
    ("public.sign", "unknown", lambda w: _post_sign(w, "no-such-petition"), 404),
    (
        "public.sign",
        "oversized",
        lambda w: _post_sign(w, w.open.slug, contact="x" * 100_000),
        413,
    ),
    ("public.sign", "get", lambda w: w.client.get(f"/p/{w.open.slug}/sign"), 405),
    ("log.verifier_key", "get", lambda w: w.client.get("/.well-known/anonsign/key"), 200),
    ("log.verifier_key", "extra-arg", lambda w: w.client.get("/.well-known/anonsign/key?x"), 200),
    ("log.verifier_key", "post", lambda w: w.client.post("/.well-known/anonsign/key"), 405),
    ("log.verifier_key", "slash", lambda w: w.client.get("/.well-known/anonsign/key/"), 404),
    ("log.checkpoint", "get", lambda w: w.client.get(f"/p/{w.logged.slug}/checkpoint"), 200),
    ("log.checkpoint", "closed", lambda w: w.client.get(f"/p/{w.closed.slug}/checkpoint"), 200),
    ("log.checkpoint", "unknown", lambda w: w.client.get("/p/nope/checkpoint"), 404),
    (
        "log.tile",
        "entries",
        lambda w: w.client.get(f"/p/{w.logged.slug}/tile/entries/000.p/2"),
        200,
    ),
    ("log.tile", "hashes", lambda w: w.client.get(f"/p/{w.logged.slug}/tile/0/000.p/1"), 200),
    ("log.tile", "beyond", lambda w: w.client.get(f"/p/{w.logged.slug}/tile/0/000.p/3"), 404),
    ("log.tile", "full", lambda w: w.client.get(f"/p/{w.logged.slug}/tile/0/000"), 404),
    ("log.tile", "bad-path", lambda w: w.client.get(f"/p/{w.logged.slug}/tile/0/00"), 400),
    ("log.tile", "bad-width", lambda w: w.client.get(f"/p/{w.logged.slug}/tile/0/000.p/256"), 400),
    ("log.tile", "unknown", lambda w: w.client.get("/p/nope/tile/0/000.p/1"), 404),
    (
        "log.leaves",
        "get",
        lambda w: w.client.get(f"/p/{w.logged.slug}/log/leaves?start=0&end=2"),
        200,
    ),
    (
        "log.leaves",
        "not-a-number",
        lambda w: w.client.get(f"/p/{w.logged.slug}/log/leaves?start=x&end=1"),
        400,
    ),
    ("log.leaves", "missing", lambda w: w.client.get(f"/p/{w.logged.slug}/log/leaves"), 400),
    (
        "log.leaves",
        "beyond",
        lambda w: w.client.get(f"/p/{w.logged.slug}/log/leaves?start=0&end=99"),
        400,
    ),
    ("log.leaves", "unknown", lambda w: w.client.get("/p/nope/log/leaves?start=0&end=0"), 404),
    (
        "log.inclusion",
        "get",
        lambda w: w.client.get(f"/p/{w.logged.slug}/log/inclusion?leaf={w.entry}&size=2"),
        200,
    ),
    (
        "log.inclusion",
        "bad-leaf",
        lambda w: w.client.get(f"/p/{w.logged.slug}/log/inclusion?leaf=%ff&size=1"),
        400,
    ),
    (
        "log.inclusion",
        "not-in-log",
        lambda w: w.client.get(f"/p/{w.logged.slug}/log/inclusion?leaf={'A' * 43}&size=2"),
        400,
    ),
    (
        "log.consistency",
        "get",
        lambda w: w.client.get(f"/p/{w.logged.slug}/log/consistency?from=1&to=2"),
        200,
    ),
    (
        "log.consistency",
        "backwards",
        lambda w: w.client.get(f"/p/{w.logged.slug}/log/consistency?from=2&to=1"),
        400,
    ),
    (
        "log.consistency",
        "unknown",
        lambda w: w.client.get("/p/nope/log/consistency?from=1&to=1"),
        404,
    ),
    ("static", "css", lambda w: w.client.get("/static/style.css"), 200),
    ("static", "head", lambda w: w.client.head("/static/style.css"), 200),
    ("static", "missing", lambda w: w.client.get("/static/nope.css"), 404),
    ("static", "traversal", lambda w: w.client.get("/static/../app.py"), 404),
    ("static", "post", lambda w: w.client.post("/static/style.css"), 405),
    (
        "static",
        "range",
        lambda w: w.client.get("/static/style.css", headers={"Range": "bytes=0-9"}),
        200,
    ),
    (
        "static",
        "if-modified-since",
        lambda w: w.client.get(
            "/static/style.css", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
        ),
        200,
    ),
    (
        "static",
        "if-none-match",
        lambda w: w.client.get("/static/style.css", headers={"If-None-Match": "*"}),
        200,
    ),
]


def test_every_route_has_valid_and_invalid_cases() -> None:
    endpoints = {endpoint for _, endpoint, _ in ROUTES}
    good = {e for e, _, _, status in CASES if status < 400}
    bad = {e for e, _, _, status in CASES if status >= 400}
    assert good == endpoints
    assert bad == endpoints
    statuses = {status for *_, status in CASES}
    assert {200, 400, 404, 405, 410, 413} <= statuses


@pytest.mark.parametrize(
    ("request_", "status"),
    [pytest.param(r, s, id=f"{e}-{n}") for e, n, r, s in CASES],
)
def test_every_answer_has_the_security_headers(
    world: World, request_: Request, status: int
) -> None:
    with request_(world) as answer:  # closed: the stylesheet is streamed from its file
        assert answer.status_code == status
        assert_headers(
            answer,
            static=answer.mimetype == "text/css",
            tile=answer.mimetype == "application/octet-stream",
        )
        assert "Onion-Location" not in answer.headers  # not configured here


def test_the_stylesheet_is_always_sent_whole_without_validators(client: FlaskClient) -> None:
    """Flask's static view would answer 304 (confirming the file's date) and 206."""
    with client.get("/static/style.css") as whole:
        assert whole.status_code == 200
        assert whole.mimetype == "text/css"
        css = whole.data
    for headers in [
        {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
        {"If-None-Match": "*"},
        {"Range": "bytes=0-9"},
        {"If-Range": "x", "Range": "bytes=0-9"},
    ]:
        with client.get("/static/style.css", headers=headers) as answer:
            assert answer.status_code == 200, headers
            assert answer.data == css
            assert_headers(answer, static=True)


def test_an_unexpected_error_is_a_500_page_with_the_headers(
    client: FlaskClient, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "petitions", broken)
    answer = client.get("/")
    assert answer.status_code == 500
    assert_headers(answer)
    assert "disk on fire" not in answer.get_data(True)


# --- TRUSTED_HOSTS (T-C6) ---------------------------------------------------------------------


def app_with(settings: Settings, service: Service, **changes: object) -> Flask:
    flask_app = create_app(settings.with_overrides(**changes), service=service)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
@pytest.mark.parametrize("path", ["/", "/p/free-press", "/p/free-press/sign", "/static/style.css"])
def test_a_host_outside_trusted_hosts_gets_a_400_page_with_the_headers(
    settings: Settings, service: Service, petition: Petition, method: str, path: str
) -> None:
    client = app_with(settings, service, trusted_hosts=("abc.onion",)).test_client()
    answer = client.open(path, method=method, headers={"Host": "evil.example"})
    assert answer.status_code == 400
    assert_headers(answer)
    if method != "HEAD":
        html = answer.get_data(True)
        assert "evil.example" not in html
        assert 'name="identifier"' not in html  # no form on a host we do not serve
        assert '<link rel="stylesheet" href="/static/style.css">' in html
    with client.open(path, method="GET", headers={"Host": "abc.onion"}) as trusted:
        assert trusted.status_code in {200, 405}
        assert_headers(trusted, static=path.startswith("/static/"))


# --- Onion-Location ------------------------------------------------------------------------


@pytest.fixture
def onion_client(settings: Settings, service: Service, petition: Petition) -> FlaskClient:
    return app_with(settings, service, onion_address=ONION).test_client()


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/", "/"),
        ("/p/free-press", "/p/free-press"),
        ("/p/free-press?lang=ru", "/p/free-press?lang=ru"),
        ("/no-such-page?a=1&b=2", "/no-such-page?a=1&b=2"),
        ("/p/no-such-petition", "/p/no-such-petition"),
        ("/?q=%0d%0aSet-Cookie:x", "/?q=%0d%0aSet-Cookie:x"),
        ("/?q=<b>\"'", "/?q=%3Cb%3E%22'"),
    ],
)
def test_html_on_another_host_names_the_onion(
    onion_client: FlaskClient, path: str, target: str
) -> None:
    answer = onion_client.get(path, headers={"Host": "petition.example.org"})
    assert answer.mimetype == "text/html"
    assert answer.headers.getlist("Onion-Location") == [f"http://{ONION}{target}"]
    assert_headers(answer, onion=True)


def test_the_answer_to_a_post_names_the_petition_page(onion_client: FlaskClient) -> None:
    answer = sign(onion_client, "free-press", "onion@example.org")
    assert answer.status_code == 200
    assert answer.headers["Onion-Location"] == f"http://{ONION}/p/free-press"


@pytest.mark.parametrize("host", [ONION, ONION.upper(), f"{ONION}:80"])
def test_no_onion_location_on_the_onion_itself(onion_client: FlaskClient, host: str) -> None:
    for path in ["/", "/p/free-press", "/no-such-page"]:
        answer = onion_client.get(path, headers={"Host": host})
        assert "Onion-Location" not in answer.headers
        assert_headers(answer)


def test_no_onion_location_on_text_json_or_css(onion_client: FlaskClient) -> None:
    for path in [
        "/static/style.css",
        "/.well-known/anonsign/key",
        "/p/free-press/checkpoint",
        "/p/free-press/log/leaves",
    ]:
        with onion_client.get(path, headers={"Host": "petition.example.org"}) as answer:
            assert answer.mimetype != "text/html"
            assert "Onion-Location" not in answer.headers, path


def test_onion_location_on_a_refused_host_too(
    settings: Settings, service: Service, petition: Petition
) -> None:
    client = app_with(settings, service, onion_address=ONION, trusted_hosts=(ONION,)).test_client()
    answer = client.get("/p/free-press", headers={"Host": "mirror.example.org"})
    assert answer.status_code == 400
    assert answer.headers["Onion-Location"] == f"http://{ONION}/p/free-press"
    assert_headers(answer, onion=True)
    assert client.get("/p/free-press", headers={"Host": ONION}).status_code == 200


# --- ANONSIGN_ONION_ADDRESS is checked when settings load ---------------------------------


def test_a_v3_onion_address_loads(tmp_path: Path) -> None:
    # The Tor Project's own onion, as published: checksum and version byte are right.
    real = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"
    for value, expected in [(real, real), (f"  {ONION.upper()} ", ONION), ("", None)]:
        loaded = load_settings(
            {"ANONSIGN_INSTANCE": str(tmp_path), "ANONSIGN_ONION_ADDRESS": value}
        )
        assert loaded.onion_address == expected


@pytest.mark.parametrize(
    "value",
    [
        "abc.onion",
        "expyuzz4wqqyqhjn.onion",  # a v2 address: retired by Tor in 2021
        "a" * 56 + ".onion",  # the right shape, a wrong checksum
        ONION[:-7] + "c.onion",  # the version byte is not 3
        ONION[:5] + ("b" if ONION[5] != "b" else "c") + ONION[6:],  # one mistyped letter
        f"http://{ONION}/",
        f"{ONION}/",
        f"{ONION}:80",
        ONION.removesuffix(".onion"),
        "petition.example.org",
        ONION[:10] + "1" + ONION[11:],  # not in the base32 alphabet
    ],
)
def test_anything_else_is_refused_naming_the_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="ANONSIGN_ONION_ADDRESS"):
        load_settings({"ANONSIGN_INSTANCE": str(tmp_path), "ANONSIGN_ONION_ADDRESS": value})


# --- through the real server ------------------------------------------------------------


@pytest.mark.slow
def test_the_real_server_names_no_version(
    tmp_path: Path, settings: Settings, service: Service, petition: Petition
) -> None:
    """gunicorn's ``Server`` header, and the whole set as it leaves the real server."""
    port = free_port()
    env = {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": "1",
        "ANONSIGN_ONION_ADDRESS": ONION,
    }
    pages = {"/": 200, f"/p/{petition.slug}": 200, "/static/style.css": 200, "/nope": 404}
    with running(["serve", "--port", str(port)], env, port, tmp_path / "server.log"):
        for path, status in pages.items():
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    code, headers = answer.status, answer.headers
            except urllib.error.HTTPError as error:
                code, headers = error.code, error.headers
            assert code == status, path
            server = headers.get_all("Server") or []
            assert server, "gunicorn names itself"
            assert all(not re.search(r"[0-9]", value) for value in server), server
            for name in ["X-Powered-By", "ETag", "Last-Modified", "Accept-Ranges", "Via"]:
                assert name not in headers, (path, name)
            for name, value in EXPECTED_HEADERS.items():
                assert headers.get_all(name) == [value], (path, name)
            html = path != "/static/style.css"
            onion_location = headers.get_all("Onion-Location")
            assert onion_location == ([f"http://{ONION}{path}"] if html else None), path
