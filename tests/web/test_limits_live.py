"""Rate limits through a real server on a unix socket, reached the way tor reaches it.

Every connection starts with the PROXY v1 line tor's ``HiddenServiceExportCircuitID
haproxy`` writes (tests/live.py, ``Circuit``), so gunicorn's ``proxy_protocol`` and the
per-circuit buckets are exercised as deployed. The Redis tests read
ANONSIGN_TEST_REDIS_URL (db 15 in CI) and share one xdist group, since they flush it.
"""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

import pytest
import redis

from anonsign.config import Settings
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from tests.conftest import SUBMITTED, SUITE_RATE_LIMITS
from tests.live import Circuit, circuit_address, serving_on_socket

BIG = "100000/minute"
#: Circuit ids chosen so that no form of one (decimal, hex, its two 16-bit groups) is a
#: word that could turn up in a key by chance.
CIRCUIT_IDS = (0x5A17C3E9, 0x6B28D4FA, 0x7C39E50B, 0x0D4AF61C, 0x1E5B072D, 0x2F6C183E)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is measured here is the limiter, not the database."""
    return f"sqlite:///{tmp_path / 'instance' / 'anonsign.db'}"


def server_env(settings: Settings, workers: int, **limits: str) -> dict[str, str]:
    return {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": str(workers),
        **{f"ANONSIGN_RATELIMIT_{name.upper()}": value for name, value in limits.items()},
    }


def identifier(tag: str, n: int) -> str:
    value = f"{tag}-{n:04d}@example.org"
    SUBMITTED.add(value)
    return value


@pytest.mark.slow
def test_each_circuit_has_its_own_bucket_and_its_streams_share_it(
    tmp_path: Path, sock: Path, settings: Settings, service: Service, petition: Petition
) -> None:
    # One worker: with several, each has its own key, and a circuit its quota in each.
    env = server_env(settings, 1, circuit="3/minute", pages=BIG, **{"global": BIG, "petition": BIG})
    with serving_on_socket(env, sock, tmp_path / "server.log"):
        first = Circuit(sock, circuit_address(CIRCUIT_IDS[0]))
        second = Circuit(sock, circuit_address(CIRCUIT_IDS[1]))
        assert [first.sign(petition.slug, identifier("a", n)) for n in range(3)] == [200] * 3
        token = first.form_token(petition.slug)
        assert token
        status, headers, page = first.post_sign(petition.slug, token, identifier("a", 3))
        assert status == 429
        assert 1 <= int(headers["retry-after"]) <= 60
        assert "Please come back in 1 minute" in page
        # Another circuit: its own quota, untouched by the first one's.
        assert [second.sign(petition.slug, identifier("b", n)) for n in range(3)] == [200] * 3
        # A new stream on the first circuit (a new connection, even without its cookie)
        # is the same circuit to tor, and shares its bucket.
        again = Circuit(sock, circuit_address(CIRCUIT_IDS[0]))
        assert again.sign(petition.slug, identifier("a", 4)) == 429
        assert second.sign(petition.slug, identifier("b", 3)) == 429
    assert sum(s.signatures for s in service.summaries()) == 6


@pytest.mark.slow
@pytest.mark.xdist_group("redis")
def test_redis_keys_hold_no_address_or_circuit_id_and_the_caps_are_shared(
    tmp_path: Path,
    sock: Path,
    settings: Settings,
    service: Service,
    petition: Petition,
    redis_url: str,
) -> None:
    env = server_env(
        settings,
        2,
        circuit="2/minute",
        pages=BIG,
        storage_uri=redis_url,
        **{"global": "5/minute", "petition": BIG},
    )
    sources = [circuit_address(c) for c in CIRCUIT_IDS] + ["203.0.113.77"]  # + a clearnet front
    statuses = []
    with serving_on_socket(env, sock, tmp_path / "server.log"):
        for n, source in enumerate(sources):
            statuses.append(Circuit(sock, source).sign(petition.slug, identifier("r", n)))
    # Two workers, one count: the global cap held across processes.
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == len(sources) - 5

    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key.decode() for key in client.keys("*")]
        values = [client.get(key) or b"" for key in keys]
        ttls = [client.ttl(key) for key in keys]
    finally:
        client.close()
    assert keys, "the limiter wrote nothing to Redis"
    for key in keys:
        assert re.fullmatch(
            r"LIMITS:LIMITER/(sign|sign:free-press|[0-9a-f]{32})/(public\.sign|pages)/\d+/1/minute",
            key,
        ), key
    assert "LIMITS:LIMITER/sign/public.sign/5/1/minute" in keys
    assert any(re.fullmatch(r"LIMITS:LIMITER/[0-9a-f]{32}/pages/.*", k) for k in keys)
    assert all(0 < ttl <= 60 for ttl in ttls), ttls  # counters that expire with their window

    needles = {"203.0.113.77", "203.0.113", "fc00", "dead:beef", "4dad"}
    for circuit_id, source in zip(CIRCUIT_IDS, sources, strict=False):
        needles |= {
            source,
            ipaddress.ip_address(source).exploded,
            str(circuit_id),
            f"{circuit_id:x}",
            f"{circuit_id:08x}",
            f"{circuit_id >> 16:x}:{circuit_id & 0xFFFF:x}",
        }
    stored = "\n".join(keys) + "\n" + b"\n".join(values).decode()
    assert sorted(n for n in needles if n in stored) == []


@pytest.mark.slow
@pytest.mark.xdist_group("redis")
def test_a_server_on_redis_refuses_signatures_while_redis_is_unreachable(
    tmp_path: Path, sock: Path, settings: Settings, service: Service, petition: Petition
) -> None:
    """The documented Redis-down behaviour, through the real server: nothing listens on
    port 1, the petition page is served, the sign post gets 503 and Retry-After: 60."""
    env = server_env(settings, 1, storage_uri="redis://127.0.0.1:1/0")
    with serving_on_socket(env, sock, tmp_path / "server.log"):
        circuit = Circuit(sock, circuit_address(CIRCUIT_IDS[0]))
        token = circuit.form_token(petition.slug)
        assert token, "the petition page must still be served"
        status, headers, page = circuit.post_sign(petition.slug, token, identifier("d", 0))
    assert status == 503
    assert headers["retry-after"] == "60"
    assert "Nothing was signed. Please try again in a minute." in page
    assert sum(s.signatures for s in service.summaries()) == 0
    log = (tmp_path / "server.log").read_text()
    assert "signatures are refused with 503" in log


@pytest.mark.slow
def test_a_fast_bot_on_one_circuit_is_cut_off_by_the_default_limits(
    tmp_path: Path, sock: Path, settings: Settings, service: Service, petition: Petition
) -> None:
    """A bot loads the form and posts fresh identifiers as fast as it can over one
    circuit, with the default limits and two workers: it is cut off within a few posts,
    gets few more through, and a person on another circuit signs right after it stops."""
    env = server_env(settings, 2)
    posts, accepted, first_refusal = 300, 0, None
    with serving_on_socket(env, sock, tmp_path / "server.log", without=tuple(SUITE_RATE_LIMITS)):
        bot = Circuit(sock, circuit_address(CIRCUIT_IDS[2]))
        token = bot.form_token(petition.slug)
        assert token
        started = time.monotonic()
        for n in range(posts):
            fresh = bot.form_token(petition.slug)  # each form is single-use
            # A refused page is a refusal too: the bot has no form to post.
            status = (
                429
                if fresh is None
                else bot.post_sign(petition.slug, fresh, identifier("bot", n))[0]
            )
            assert status in (200, 429), status
            if status == 200:
                accepted += 1
            elif first_refusal is None:
                first_refusal = n
        elapsed = time.monotonic() - started
        person = Circuit(sock, circuit_address(CIRCUIT_IDS[3]))
        assert person.sign(petition.slug, identifier("person", 0)) == 200
    print(
        f"\nbot: {posts} posts in {elapsed:.1f} s, {accepted} accepted, "
        f"first refused at post {first_refusal}"
    )
    # Default: 5 a minute per circuit in each of the two workers.
    assert first_refusal is not None
    assert first_refusal <= 10
    assert accepted <= 10
    assert sum(s.signatures for s in service.summaries()) == accepted + 1
