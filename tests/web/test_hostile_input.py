"""Hostile and malformed requests get a 4xx page, lose nothing, and never show a traceback."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from gunicorn.http.errors import (
    ChunkMissingTerminator,
    InvalidChunkExtension,
    InvalidChunkSize,
    NoMoreData,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, TestResponse, run_wsgi_app

from anonsign.app import create_app
from anonsign.config import Settings
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from anonsign.web.guard import BodyReadInterrupted, GuardedInput, MalformedBody
from tests.conftest import HONEYPOT, page_fields
from tests.web.test_headers import EXPECTED_HEADERS, ONION

ACCEPTABLE = {200, 400, 404, 405, 410, 413, 415}


def fields_for(client: FlaskClient, petition: Petition) -> dict[str, str]:
    """A fresh page's tokens (CSRF and single-use form token) and empty honeypot."""
    return page_fields(client, petition.slug)


def assert_clean_refusal(answer: TestResponse, *statuses: int) -> None:
    assert answer.status_code in statuses, answer.status_code
    body = answer.get_data(as_text=True)
    assert "Traceback" not in body
    assert 'File "' not in body
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


def signatures(service: Service) -> int:
    return sum(s.signatures for s in service.summaries())


def assert_refused_for_its_input(answer: TestResponse) -> None:
    """A 400 about what was posted, not the form token's refusal (web.form_guard)."""
    assert_clean_refusal(answer, 400)
    assert "was already used" not in answer.get_data(as_text=True)


def test_form_limits_are_set(app: Flask) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert app.config["MAX_FORM_MEMORY_SIZE"] == 64 * 1024
    assert app.config["MAX_FORM_PARTS"] == 16


def test_one_megabyte_field_is_413(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    data = fields_for(client, petition) | {"identifier": "a" * 1_000_000}
    assert_clean_refusal(client.post(f"/p/{petition.slug}/sign", data=data), 413)
    assert signatures(service) == 0


def test_thousands_of_fields_are_refused(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    tokens = urlencode(fields_for(client, petition))
    fields = "&".join(f"f{i}=x" for i in range(5000))
    urlencoded = client.post(
        f"/p/{petition.slug}/sign",
        data=f"{tokens}&identifier=j@example.org&consent=y&{fields}",
        content_type="application/x-www-form-urlencoded",
    )
    # Flask caps the body (64 KiB); within it, the extra fields are ignored.
    assert urlencoded.status_code in {200, 400, 413}
    fields_ = fields_for(client, petition) | {"identifier": "k@example.org", "consent": "y"}
    fields_.update({f"f{i}": "x" for i in range(2000)})
    body = (
        "".join(
            f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields_.items()
        )
        + "--b--\r\n"
    )
    multipart = client.post(
        f"/p/{petition.slug}/sign",
        data=body.encode(),
        content_type="multipart/form-data; boundary=b",
    )
    assert_clean_refusal(multipart, 413)
    assert signatures(service) <= 1


def test_nul_and_control_characters_are_400(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    for identifier in ["a\x00@example.org", "a@exam\x07ple.org", "\x1b[31m@example.org"]:
        answer = client.post(
            f"/p/{petition.slug}/sign",
            data=fields_for(client, petition) | {"identifier": identifier, "consent": "y"},
        )
        assert_refused_for_its_input(answer)
    contact = client.post(
        f"/p/{petition.slug}/sign",
        data=fields_for(client, petition)
        | {"identifier": "ok@example.org", "contact": "call\x00me", "consent": "y"},
    )
    assert_refused_for_its_input(contact)
    assert signatures(service) == 0


def test_invalid_utf8_is_400_and_keeps_nothing(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    tokens = urlencode(fields_for(client, petition))
    urlencoded = client.post(
        f"/p/{petition.slug}/sign",
        data=f"{tokens}&consent=y&identifier=".encode() + b"\xff\xfe@example.org",
        content_type="application/x-www-form-urlencoded",
    )
    assert_refused_for_its_input(urlencoded)  # Werkzeug drops the undecodable field
    parts = "".join(
        f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (fields_for(client, petition) | {"consent": "y"}).items()
    )
    multipart = client.post(
        f"/p/{petition.slug}/sign",
        data=(parts + '--b\r\nContent-Disposition: form-data; name="identifier"\r\n\r\n').encode()
        + b"\xff\xfe@example.org\r\n--b--\r\n",
        content_type="multipart/form-data; boundary=b",
    )
    assert_refused_for_its_input(multipart)  # decoded with U+FFFD, which is refused
    assert signatures(service) == 0


def test_missing_forged_and_foreign_posts_get_one_identical_page(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    page = fields_for(client, petition)
    token = page["csrf_token"]
    url = f"/p/{petition.slug}/sign"
    fields = {"identifier": "h@example.org", "consent": "y"}
    missing = client.post(url, data=fields)
    forged = client.post(url, data={**page, **fields, "csrf_token": "forged." + token[7:]})
    foreign = client.post(url, data={**page, **fields}, headers={"Origin": "http://evil.onion"})
    as_json = client.post(url, data=json.dumps(fields), content_type="application/json")
    for answer in (missing, forged, foreign, as_json):
        assert_clean_refusal(answer, 400)
    assert missing.data == forged.data == foreign.data == as_json.data
    assert signatures(service) == 0
    # The same post from our own origin goes through (a refused post spent no form token).
    ok = client.post(url, data={**page, **fields}, headers={"Origin": "http://localhost"})
    assert ok.status_code == 200


def test_token_from_another_session_is_refused(
    app: Flask, service: Service, petition: Petition
) -> None:
    fields = fields_for(app.test_client(), petition)
    other = app.test_client()
    other.get(f"/p/{petition.slug}")
    answer = other.post(
        f"/p/{petition.slug}/sign",
        data=fields | {"identifier": "i@example.org", "consent": "y"},
    )
    assert_clean_refusal(answer, 400)
    assert signatures(service) == 0


def test_wrong_methods_and_odd_paths(client: FlaskClient, petition: Petition) -> None:
    assert_clean_refusal(client.put(f"/p/{petition.slug}/sign"), 405)
    assert_clean_refusal(client.delete(f"/p/{petition.slug}"), 405)
    assert_clean_refusal(client.get(f"/p/{petition.slug}/sign"), 405)
    for path in ["/p/%00", "/p/" + "x" * 5000, "/p/%ff%fe", "/p/ünïcode", "/nope?q=%ff"]:
        assert_clean_refusal(client.get(path), 404)
    assert_clean_refusal(client.get("/?" + "a=1&" * 2000), 200)


field_names = st.sampled_from(
    ["identifier", "contact", "consent", "csrf_token", "form_token", HONEYPOT, "other"]
)
field_values = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["y", "", "+993 65 123456", "a@b.c", "\x00", "\udc80", "😀" * 50]),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    form=st.dictionaries(field_names, field_values, max_size=5),
    with_token=st.booleans(),
)
def test_random_forms_never_get_a_5xx(
    client: FlaskClient, petition: Petition, form: dict[str, str], with_token: bool
) -> None:
    if with_token:
        form.update(fields_for(client, petition))
    safe = {
        k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for k, v in form.items()
    }
    answer = client.post(f"/p/{petition.slug}/sign", data=safe)
    assert answer.status_code in ACCEPTABLE
    assert "Traceback" not in answer.get_data(as_text=True)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=2000),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/json",
            "multipart/form-data",
        ]
    ),
)
def test_random_bodies_never_get_a_5xx(
    client: FlaskClient, petition: Petition, body: bytes, content_type: str
) -> None:
    answer = client.post(f"/p/{petition.slug}/sign", data=body, content_type=content_type)
    assert answer.status_code in ACCEPTABLE


def test_options_and_trace_are_405(client: FlaskClient, petition: Petition) -> None:
    for path in ["/", f"/p/{petition.slug}", f"/p/{petition.slug}/sign", "/static/style.css"]:
        assert_clean_refusal(client.options(path), 405)
        assert_clean_refusal(client.open(path, method="TRACE"), 405)


# --- any Host header, any request line ---------------------------------------------------------
#
# Werkzeug IDNA-encodes the Host to bind the URL map; a label over 63 characters or an
# empty one (`a..b`) fails there, before routing. The refusal used to fail in turn while
# rendering its page (no URL adapter), so gunicorn answered a bare 500 without headers.

UNENCODABLE_HOSTS = ["a" * 64 + ".onion", "a..b", ".", ".onion", "a" * 64, "x" * 300, "a..b:80"]


def assert_answer_with_headers(status: int, headers: Mapping[str, str], body: bytes) -> None:
    assert 200 <= status < 500, status
    for name, value in EXPECTED_HEADERS.items():
        assert headers.get(name) == value, (status, name)
    assert b"Traceback" not in body
    assert b'File "' not in body


def call(app: Flask, **environ: object) -> tuple[int, Mapping[str, str], bytes]:
    """Call the WSGI app with exactly these environ values, as a server would pass them."""
    env = EnvironBuilder(path="/").get_environ()
    env.update(environ)
    body, status, headers = run_wsgi_app(app, env, buffered=True)
    return int(status.split()[0]), headers, b"".join(body)


@pytest.mark.parametrize("host", UNENCODABLE_HOSTS)
@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("POST", "/p/free-press/sign")])
def test_a_host_werkzeug_cannot_encode_gets_a_400_page_with_the_headers(
    client: FlaskClient, petition: Petition, host: str, method: str, path: str
) -> None:
    answer = client.open(path, method=method, headers={"Host": host})
    assert_clean_refusal(answer, 400)
    assert_answer_with_headers(answer.status_code, answer.headers, answer.data)
    if len(host) > 8:
        assert host.encode() not in answer.data  # the refused Host is never written back
    assert b'<link rel="stylesheet" href="/static/style.css">' in answer.data


def test_an_unencodable_host_with_an_onion_address_set_is_a_400_page(
    settings: Settings, service: Service, petition: Petition
) -> None:
    # Onion-Location is computed on the refusal too (web.headers); it needs the adapter.
    flask_app = create_app(settings.with_overrides(onion_address=ONION), service=service)
    flask_app.config["TESTING"] = True
    for method in ("GET", "POST"):
        answer = flask_app.test_client().open(
            f"/p/{petition.slug}/sign", method=method, headers={"Host": "a..b"}
        )
        assert_clean_refusal(answer, 400)
        assert answer.headers["Onion-Location"].startswith(f"http://{ONION}/")


@pytest.fixture
def trusted_app(settings: Settings, service: Service) -> Flask:
    """The app with TRUSTED_HOSTS set, as a production onion service runs it."""
    flask_app = create_app(settings.with_overrides(trusted_hosts=(ONION,)), service=service)
    flask_app.config["TESTING"] = True
    return flask_app


hosts = st.one_of(
    # Raw header bytes as a server hands them on (WSGI strings are latin-1).
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    st.text(max_size=80),
    # Dotted names with labels around the 63-character limit, empty ones, and a port.
    st.builds(
        lambda labels, port: ".".join(labels) + port,
        st.lists(st.text(alphabet="ab-ü_*", min_size=0, max_size=70), max_size=5),
        st.sampled_from(["", ":80", ":0", ":99999", ":", ":x", "]"]),
    ),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    host=hosts,
    trusted=st.booleans(),
    target=st.sampled_from(["/", "/p/free-press", "/p/free-press/sign", "/static/style.css"]),
    method=st.sampled_from(["GET", "POST", "HEAD"]),
)
def test_any_host_header_gets_an_answer_with_the_headers(
    app: Flask,
    trusted_app: Flask,
    petition: Petition,
    host: str,
    trusted: bool,
    target: str,
    method: str,
) -> None:
    status, headers, body = call(
        trusted_app if trusted else app, HTTP_HOST=host, PATH_INFO=target, REQUEST_METHOD=method
    )
    assert_answer_with_headers(status, headers, body)


wsgi_strings = st.binary(max_size=120).map(lambda b: b.decode("latin-1"))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.one_of(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS"]), wsgi_strings),
    path=st.one_of(
        wsgi_strings.map(lambda s: "/" + s),
        st.builds(lambda s: "/p/" + s, wsgi_strings),
        st.builds(lambda s: "/p/free-press/" + s, wsgi_strings),
        wsgi_strings,
    ),
    query=wsgi_strings,
)
def test_any_request_line_gets_an_answer_with_the_headers(
    app: Flask, petition: Petition, method: str, path: str, query: str
) -> None:
    status, headers, body = call(app, REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query)
    assert_answer_with_headers(status, headers, body)


# --- bodies the server cannot decode ---------------------------------------------------------
#
# gunicorn decodes a chunked body while the app reads it; a bad chunk size raised its own
# InvalidChunkSize, which is neither OSError nor ValueError, so it reached the app's
# catch-all and became a 500 (web.guard).


class BrokenBody(io.RawIOBase):
    """A request body that yields a few bytes, then fails the way a server's reader does."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.sent = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self.sent:
            self.sent = True
            return b"identifier=a"
        raise self.error

    def readline(self, size: int | None = -1) -> bytes:
        return self.read(size or -1)


@pytest.mark.parametrize(
    "error",
    [
        InvalidChunkSize(b"ZZZ"),
        ChunkMissingTerminator(b"xx"),
        InvalidChunkExtension("bad extension"),
        NoMoreData(b""),
        ConnectionResetError(),
        ValueError("I/O operation on closed file"),
        RuntimeError("any other failure of the stream"),
    ],
    ids=type,
)
@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=b"]
)
def test_a_body_the_server_cannot_decode_is_a_400_page(
    client: FlaskClient,
    service: Service,
    petition: Petition,
    error: BaseException,
    content_type: str,
) -> None:
    fields_for(client, petition)
    answer = client.post(
        f"/p/{petition.slug}/sign",
        content_type=content_type,
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": BrokenBody(error), "wsgi.input_terminated": True},
    )
    assert_clean_refusal(answer, 400)
    assert_answer_with_headers(answer.status_code, answer.headers, answer.data)
    assert signatures(service) == 0


def test_a_stop_while_reading_the_body_is_marked_as_the_clients_slowness() -> None:
    # gunicorn aborts a worker held past its timeout with SystemExit inside the read; the
    # worker answers 408 when it sees BodyReadInterrupted (cli.gunicorn_worker).
    guarded = GuardedInput(BrokenBody(SystemExit(1)))  # type: ignore[arg-type]
    assert guarded.read(100) == b"identifier=a"
    with pytest.raises(BodyReadInterrupted) as stopped:
        guarded.read(100)
    assert stopped.value.code == 1
    with pytest.raises(MalformedBody):
        GuardedInput(BrokenBody(InvalidChunkSize(b"ZZZ"))).readlines()  # type: ignore[arg-type]


# --- headers of a post that is otherwise valid -------------------------------------------------


@pytest.mark.parametrize("origin", ["http://[", "http://[::1", "http://a]", "http://x]:80"])
def test_a_malformed_origin_is_refused_like_a_foreign_one(
    client: FlaskClient, service: Service, petition: Petition, origin: str
) -> None:
    # urlsplit() raises ValueError on an unclosed IPv6 bracket: with a valid token, that
    # used to be a 500 for anyone who cared to send it.
    url = f"/p/{petition.slug}/sign"
    fields = fields_for(client, petition) | {"identifier": "o@example.org", "consent": "y"}
    foreign = client.post(url, data=fields, headers={"Origin": "http://evil.onion"})
    malformed = client.post(url, data=fields, headers={"Origin": origin})
    assert_clean_refusal(malformed, 400)
    assert malformed.data == foreign.data
    assert signatures(service) == 0


header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["http://[", "null", "http://localhost", "", "multipart/form-data"]),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["HTTP_ORIGIN", "HTTP_REFERER", "CONTENT_TYPE", "HTTP_COOKIE", "HTTP_ACCEPT_LANGUAGE"]
        ),
        header_values,
        max_size=3,
    )
)
def test_any_header_on_a_post_with_a_valid_token_gets_a_page_with_the_headers(
    app: Flask, petition: Petition, headers: dict[str, str]
) -> None:
    browser = app.test_client()
    fields = fields_for(browser, petition)
    environ = EnvironBuilder(
        path=f"/p/{petition.slug}/sign",
        method="POST",
        data=fields | {"identifier": "fuzz@example.org", "consent": "y"},
    ).get_environ()
    cookie = browser.get_cookie("anonsign")
    assert cookie is not None
    environ["HTTP_COOKIE"] = f"anonsign={cookie.value}"
    if "HTTP_COOKIE" in headers:
        headers["HTTP_COOKIE"] = environ["HTTP_COOKIE"] + "; " + headers["HTTP_COOKIE"]
    environ.update(headers)
    body, status, answer_headers = run_wsgi_app(app, environ, buffered=True)
    assert_answer_with_headers(int(status.split()[0]), answer_headers, b"".join(body))
