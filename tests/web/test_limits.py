"""Rate limits in process: caps with constant keys, buckets by peer, refusals before work.

The suite's own limits are out of the way (tests/conftest.py, SUITE_RATE_LIMITS); every
test here sets small ones. What needs a real server (tor's PROXY line, Redis, the
default limits against a bot) is in test_limits_live.py.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from limits.errors import StorageError
from werkzeug.test import TestResponse

import anonsign.crypto.dedup
from anonsign.app import create_app
from anonsign.config import Settings, load_settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.petitions import Petition
from anonsign.errors import ConfigError
from anonsign.service import Service
from anonsign.web.limits import RateLimits
from tests.conftest import SPOOFED_ADDRESS, SPOOFED_AGENT, csrf_token, make_petition, sign

BIG = "100000/minute"
OTHER_ADDRESS = "198.51.100.77"


def limited_app(settings: Settings, service: Service, **limits: str) -> Flask:
    values = {
        "ratelimit_global": BIG,
        "ratelimit_petition": BIG,
        "ratelimit_circuit": BIG,
        "ratelimit_pages": BIG,
        **limits,
    }
    app = create_app(settings.with_overrides(**values), service=service)
    app.config["TESTING"] = True
    return app


def client_from(app: Flask, address: str = SPOOFED_ADDRESS) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update(
        {
            "REMOTE_ADDR": address,
            "HTTP_X_FORWARDED_FOR": "203.0.113.144",
            "HTTP_USER_AGENT": SPOOFED_AGENT,
        }
    )
    return client


def signed(service: Service, petition: Petition) -> int:
    return next(s.signatures for s in service.summaries() if s.petition.id == petition.id)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the dedup keys computed (each one Argon2id), wherever the sign path asks."""
    calls: list[int] = []
    real = anonsign.crypto.dedup.dedup_key

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(anonsign.crypto.dedup, "dedup_key", counting)
    return calls


def retry_after(answer: TestResponse) -> int:
    value = answer.headers.get("Retry-After", "")
    assert value.isdigit(), f"no Retry-After in seconds: {value!r}"
    return int(value)


def assert_refused(answer: TestResponse, *, window: int = 60) -> None:
    assert answer.status_code == 429
    assert 1 <= retry_after(answer) <= window
    page = answer.get_data(as_text=True)
    assert "Please come back in 1 minute" in page
    assert "Content-Security-Policy" in answer.headers
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert header not in answer.headers


# --- the caps: constant keys -----------------------------------------------------------


def test_the_per_petition_cap_refuses_with_429_and_retry_after(
    settings: Settings, service: Service, petition: Petition, organizer: OrganizerSecretKey
) -> None:
    other = make_petition(service, organizer, "second-one")
    app = limited_app(settings, service, ratelimit_petition="2/minute")
    # Fresh peers each time: only the petition's cap can refuse.
    for n in range(2):
        assert sign(client_from(app, f"198.51.100.{n}"), petition.slug, f"p{n}@example.org") \
            .status_code == 200  # fmt: skip
    refused = sign(client_from(app, "198.51.100.9"), petition.slug, "p9@example.org")
    assert_refused(refused)
    assert "Nothing was signed" in refused.get_data(as_text=True)
    assert signed(service, petition) == 2
    # Another petition has its own cap.
    assert sign(client_from(app, "198.51.100.10"), other.slug, "o1@example.org").status_code == 200


def test_the_global_cap_refuses_across_petitions(
    settings: Settings, service: Service, petition: Petition, organizer: OrganizerSecretKey
) -> None:
    other = make_petition(service, organizer, "second-one")
    app = limited_app(settings, service, ratelimit_global="3/minute")
    slugs = [petition.slug, other.slug, petition.slug]
    for n, slug in enumerate(slugs):
        assert (
            sign(client_from(app, f"198.51.100.{n}"), slug, f"g{n}@example.org").status_code == 200
        )
    assert_refused(sign(client_from(app, "198.51.100.9"), other.slug, "g9@example.org"))


def test_a_refused_signature_does_no_argon2_work(
    settings: Settings, service: Service, petition: Petition, hashes: list[int]
) -> None:
    app = limited_app(settings, service, ratelimit_global="1/minute")
    assert sign(client_from(app), petition.slug, "first@example.org").status_code == 200
    assert len(hashes) == 1
    for n in range(5):
        assert_refused(sign(client_from(app, f"198.51.100.{n}"), petition.slug, f"r{n}@ex.org"))
    assert len(hashes) == 1, "a refused post computed a dedup key"
    assert signed(service, petition) == 1


def test_the_refusal_is_the_same_whatever_the_identifier(
    settings: Settings, service: Service, petition: Petition, hashes: list[int]
) -> None:
    """The 429 is decided before the identifier is read: a new, a repeated and an invalid
    identifier get the same answer (no membership oracle through the limiter)."""
    app = limited_app(settings, service, ratelimit_petition="1/minute")
    client = client_from(app)
    assert sign(client, petition.slug, "known@example.org").status_code == 200
    token = csrf_token(client.get(f"/p/{petition.slug}").get_data(as_text=True))
    answers = [
        client.post(
            f"/p/{petition.slug}/sign",
            data={"csrf_token": token, "identifier": identifier, "consent": "y"},
        )
        for identifier in ("known@example.org", "never-seen@example.org", "not an email")
    ]
    assert len(hashes) == 1
    assert {a.status_code for a in answers} == {429}
    assert len({a.get_data() for a in answers}) == 1
    seconds = [retry_after(a) for a in answers]
    assert max(seconds) - min(seconds) <= 1  # the same window, read a moment apart
    headers = [sorted((k, v) for k, v in a.headers if k not in ("Retry-After",)) for a in answers]
    assert headers[0] == headers[1] == headers[2]


# --- buckets by peer --------------------------------------------------------------------


def test_each_peer_has_its_own_sign_bucket_and_forwarded_headers_do_not_count(
    settings: Settings, service: Service, petition: Petition
) -> None:
    app = limited_app(settings, service, ratelimit_circuit="2/minute")
    one = client_from(app)
    for n in range(2):
        # A new X-Forwarded-For on every post: it is what the client says, never a bucket.
        one.environ_base["HTTP_X_FORWARDED_FOR"] = f"203.0.113.{n + 1}"
        assert sign(one, petition.slug, f"c{n}@example.org").status_code == 200
    one.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.99"
    assert_refused(sign(one, petition.slug, "c2@example.org"))
    # Another peer (another circuit) is not held back by the first one's bucket.
    assert sign(client_from(app, OTHER_ADDRESS), petition.slug, "d0@example.org").status_code == 200


def test_a_peer_over_its_quota_does_not_use_up_the_caps(
    settings: Settings, service: Service, petition: Petition
) -> None:
    """The per-circuit layer is checked first: its refusals do not count in the caps."""
    app = limited_app(settings, service, ratelimit_circuit="2/minute", ratelimit_global="4/minute")
    bot = client_from(app)
    for n in range(2):
        assert sign(bot, petition.slug, f"bot{n}@example.org").status_code == 200
    for n in range(20):
        assert sign(bot, petition.slug, f"bot-more{n}@example.org").status_code == 429
    # 2 of the 4 global posts are left, whatever the bot did after its quota.
    for n, address in enumerate(("198.51.100.30", "198.51.100.31")):
        assert sign(client_from(app, address), petition.slug, f"h{n}@ex.org").status_code == 200
    assert sign(client_from(app, "198.51.100.32"), petition.slug, "h2@ex.org").status_code == 429


def test_a_flooded_petition_does_not_use_up_the_global_cap(
    settings: Settings, service: Service, petition: Petition, organizer: OrganizerSecretKey
) -> None:
    other = make_petition(service, organizer, "second-one")
    app = limited_app(settings, service, ratelimit_petition="2/minute", ratelimit_global="4/minute")
    for n in range(12):  # many circuits, one petition
        sign(client_from(app, f"198.51.100.{n}"), petition.slug, f"f{n}@example.org")
    assert signed(service, petition) == 2
    for n in range(2):
        assert sign(client_from(app, f"198.51.100.{50 + n}"), other.slug, f"o{n}@ex.org") \
            .status_code == 200  # fmt: skip


def test_pages_have_a_looser_per_peer_limit_and_the_log_none(
    settings: Settings, service: Service, petition: Petition
) -> None:
    app = limited_app(settings, service, ratelimit_pages="3/minute")
    client = client_from(app)
    for _ in range(3):
        assert client.get(f"/p/{petition.slug}").status_code == 200
    refused = client.get("/")
    assert refused.status_code == 429
    assert 1 <= retry_after(refused) <= 60
    assert "Please come back in 1 minute." in refused.get_data(as_text=True)
    # Auditors fetch the log page after page; the stylesheet comes with every page.
    for _ in range(5):
        assert client.get(f"/p/{petition.slug}/checkpoint").status_code == 200
        with client.get("/static/style.css") as stylesheet:
            assert stylesheet.status_code == 200
    assert client_from(app, OTHER_ADDRESS).get("/").status_code == 200


def test_without_a_peer_address_only_the_caps_apply(
    settings: Settings, service: Service, petition: Petition, caplog: pytest.LogCaptureFixture
) -> None:
    """A unix socket without tor's PROXY line: one bucket for all would lock everyone out
    at once, so there is none; the caps still hold, and the log says what is missing."""
    app = limited_app(settings, service, ratelimit_circuit="1/minute", ratelimit_global="3/minute")
    nobody = client_from(app, "")
    with caplog.at_level(logging.WARNING, logger="anonsign.limits"):
        for n in range(3):
            assert sign(nobody, petition.slug, f"n{n}@example.org").status_code == 200
    assert sign(nobody, petition.slug, "n3@example.org").status_code == 429
    assert "HiddenServiceExportCircuitID" in caplog.text


# --- what the limiter keeps and says ------------------------------------------------------


def test_the_limiters_keys_hold_no_address(
    settings: Settings, service: Service, petition: Petition
) -> None:
    app = limited_app(settings, service, ratelimit_circuit="1/minute")
    for address in (SPOOFED_ADDRESS, "2001:db8::7"):
        client = client_from(app, address)
        sign(client, petition.slug, "k@example.org")
        sign(client, petition.slug, "k2@example.org")
    limits: RateLimits = app.extensions["anonsign.limits"]
    keys = [key for limiter in limits.limiters for key in limiter.storage.storage]  # type: ignore[attr-defined]
    assert keys
    for key in keys:
        assert re.fullmatch(
            r"LIMITER/(sign|sign:free-press|[0-9a-f]{32})/(public\.sign|pages)/\d+/1/minute", key
        ), key
        for needle in (SPOOFED_ADDRESS, "2001:db8::7", "203.0.113", "example.org"):
            assert needle not in key
    assert f"LIMITER/sign:{petition.slug}/public.sign/100000/1/minute" in keys
    assert "LIMITER/sign/public.sign/100000/1/minute" in keys


def test_a_breach_logs_no_key(
    settings: Settings, service: Service, petition: Petition, caplog: pytest.LogCaptureFixture
) -> None:
    app = limited_app(settings, service, ratelimit_circuit="1/minute", ratelimit_pages="1/minute")
    client = client_from(app)
    limits: RateLimits = app.extensions["anonsign.limits"]
    bucket = limits.bucket_key.name(SPOOFED_ADDRESS)
    with caplog.at_level(logging.DEBUG):
        sign(client, petition.slug, "l0@example.org")
        assert client.get(f"/p/{petition.slug}").status_code == 429
    assert [r for r in caplog.records if r.name.startswith("flask-limiter")] == []
    assert bucket not in caplog.text
    assert SPOOFED_ADDRESS not in caplog.text
    # The check can fail: Flask-Limiter does name the key when its logger is let through.
    logging.getLogger("flask-limiter").setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            assert client.get(f"/p/{petition.slug}").status_code == 429
        assert bucket in caplog.text
    finally:
        logging.getLogger("flask-limiter").setLevel(logging.WARNING)
        caplog.clear()


# --- when the storage is down -----------------------------------------------------------


def test_sign_posts_fail_closed_while_the_storage_is_down(
    settings: Settings, service: Service, petition: Petition, hashes: list[int]
) -> None:
    """Redis unreachable (nothing listens on port 1): the sign post is refused with 503
    and Retry-After before any work; pages are still served."""
    app = limited_app(settings, service, ratelimit_storage_uri="redis://127.0.0.1:1/0")
    client = client_from(app)
    page = client.get(f"/p/{petition.slug}")
    assert page.status_code == 200  # page limits fail open
    token = csrf_token(page.get_data(as_text=True))
    answer = client.post(
        f"/p/{petition.slug}/sign",
        data={"csrf_token": token, "identifier": "down@example.org", "consent": "y"},
    )
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "60"
    text = answer.get_data(as_text=True)
    assert "The service is busy right now." in text
    assert "Nothing was signed. Please try again in a minute." in text
    assert hashes == []
    assert signed(service, petition) == 0


def test_a_signature_past_the_limiter_is_kept_and_answered_if_the_storage_fails_after(
    settings: Settings, service: Service, petition: Petition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing touches the limiter's storage once the view runs: a storage failure then
    cannot turn an accepted signature into an error page."""
    app = limited_app(settings, service)
    limits: RateLimits = app.extensions["anonsign.limits"]
    real = anonsign.crypto.dedup.dedup_key

    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise StorageError(ConnectionError("storage gone"))

    def storage_dies_now(*args: Any, **kwargs: Any) -> bytes:
        for limiter in limits.limiters:
            for method in ("incr", "get", "get_expiry", "check", "clear"):
                monkeypatch.setattr(limiter.storage, method, fail)
        return real(*args, **kwargs)

    monkeypatch.setattr(anonsign.crypto.dedup, "dedup_key", storage_dies_now)
    answer = sign(client_from(app), petition.slug, "kept@example.org")
    assert answer.status_code == 200
    assert "Thank you" in answer.get_data(as_text=True)
    assert signed(service, petition) == 1


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATELIMIT_GLOBAL", "lots"),
        ("RATELIMIT_PETITION", "0/minute"),
        ("RATELIMIT_CIRCUIT", "5/fortnight"),
        ("RATELIMIT_PAGES", "-1/minute"),
        ("RATELIMIT_GLOBAL", "600/minute and more"),
    ],
)
def test_a_bad_rate_limit_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"ANONSIGN_{name} must be a rate limit"):
        load_settings({f"ANONSIGN_{name}": value})


@pytest.mark.parametrize("value", ["memcached://x", "redis:/x", "postgresql://u:secret@h/db"])
def test_a_bad_storage_uri_names_its_variable_and_not_its_password(value: str) -> None:
    with pytest.raises(ConfigError, match="ANONSIGN_RATELIMIT_STORAGE_URI") as caught:
        load_settings({"ANONSIGN_RATELIMIT_STORAGE_URI": value})
    assert "secret" not in str(caught.value)


def test_the_defaults_parse_and_are_flask_limiters_syntax() -> None:
    from limits import parse_many

    settings = load_settings({})
    for value in (
        settings.ratelimit_global,
        settings.ratelimit_petition,
        settings.ratelimit_circuit,
        settings.ratelimit_pages,
    ):
        assert list(parse_many(value))
    assert settings.ratelimit_storage_uri == "memory://"
    given = load_settings(
        {
            "ANONSIGN_RATELIMIT_CIRCUIT": "3 per minute;20/hour",
            "ANONSIGN_RATELIMIT_STORAGE_URI": "redis+unix:///run/redis/redis.sock",
        }
    )
    assert given.ratelimit_circuit == "3 per minute;20/hour"
    assert given.ratelimit_storage_uri == "redis+unix:///run/redis/redis.sock"


def test_the_refusal_is_in_the_page_language(
    settings: Settings, service: Service, petition: Petition
) -> None:
    app = limited_app(settings, service, ratelimit_pages="1/minute")
    client = client_from(app)
    assert client.get(f"/p/{petition.slug}?lang=ru").status_code == 200
    refused = client.get(f"/p/{petition.slug}")
    assert refused.status_code == 429
    assert "Вернитесь через 1 минуту." in refused.get_data(as_text=True)
