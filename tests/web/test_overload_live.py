"""Slow clients and more signers than the host can hash, against a real server.

The server runs on a unix socket and every connection starts with tor's PROXY line, as
deployed (tests/live.py, ``Circuit``). What is shown:

- hundreds of connections that sent their headers and part of a body hold no worker: a
  page load and a signature still answer within a few seconds, and each slow connection
  gets its 408 (with every security header) once its time to arrive is up;
- posts past the hashing slots and their queue are shed at once with 503 and
  ``Retry-After``, having spent nothing: the same form signs afterwards;
- a bounded flood, well past capacity for tens of seconds, gets only 200, 400, 429 and
  503; its server stays within its memory budget; every thank-you page is a signature in
  the log afterwards.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from anonsign.config import Settings
from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.service import Service
from anonsign.stats import KEPT_SECONDS, Counts
from anonsign.stats.ring import FileStats
from tests.conftest import SUBMITTED, make_petition
from tests.live import (
    Circuit,
    circuit_address,
    group_pids,
    proxy_line,
    rss_kib,
    serving_on_socket,
)
from tests.security.test_crash import dedup_key_of, stored_dedup_keys
from tests.web.test_headers import EXPECTED_HEADERS

BIG = "1000000/minute"
#: Argon2id at the project's default cost: what a signature really costs.
REAL_ARGON2 = Argon2Params(time_cost=3, memory_kib=64 * 1024, parallelism=1)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is measured here is the worker model, not the database."""
    return f"sqlite:///{tmp_path / 'instance' / 'anonsign.db'}"


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": "2",
        **extra,
    }


def identifier(tag: str, n: int) -> str:
    value = f"{tag}-{n:05d}"
    SUBMITTED.add(value)
    return value


def hold_partial_post(sock: Path, circuit_id: int) -> socket.socket:
    """A connection that sent its PROXY line, its headers and 20 of 500 body bytes."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(30)
    conn.connect(str(sock))
    conn.sendall(
        proxy_line(circuit_address(circuit_id))
        + b"POST /p/slow/sign HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n"
        b"csrf_token=aaaaaaaaa"
    )
    return conn


SLOW_CONNECTIONS = 300
READ_SECONDS = 8


@pytest.mark.slow
def test_hundreds_of_slow_clients_leave_the_form_answering(
    tmp_path: Path, sock: Path, settings: Settings, service: Service, organizer: OrganizerSecretKey
) -> None:
    make_petition(service, organizer, "slow", IdentifierKind.TEXT)
    # One worker: every slow connection lands on the process that must answer the page.
    env = server_env(
        settings, ANONSIGN_WORKERS="1", ANONSIGN_REQUEST_READ_SECONDS=str(READ_SECONDS)
    )
    with serving_on_socket(env, sock, tmp_path / "server.log"):
        # A first page compiles the templates: what is timed below is the slow clients'
        # effect, not the start of a process (seconds on a loaded machine).
        assert Circuit(sock, circuit_address(0x7E56)).request("GET", "/p/slow")[0] == 200
        started = time.monotonic()
        held = [hold_partial_post(sock, 0x10000 + n) for n in range(SLOW_CONNECTIONS)]
        try:
            person = Circuit(sock, circuit_address(0x7E57))
            before = time.monotonic()
            status, _headers, _page = person.request("GET", "/p/slow")
            assert status == 200
            assert time.monotonic() - before < 3, "the page waited behind the slow clients"
            before = time.monotonic()
            assert person.sign("slow", identifier("person", 1)) == 200
            assert time.monotonic() - before < 5, "the signature waited behind slow clients"
            assert time.monotonic() - started < READ_SECONDS, "too slow to show anything"

            # Their time is up: each slow connection gets its 408, with every header.
            for conn in held[:20]:
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
                head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
                assert head[0].startswith("HTTP/1.1 408 ")
                headers = dict(line.split(": ", 1) for line in head[1:])
                for name, value in EXPECTED_HEADERS.items():
                    assert headers[name] == value
        finally:
            for conn in held:
                conn.close()
    assert next(s.signatures for s in service.summaries()) == 1


def counted(stats_dir: Path, slug: str) -> Counts:
    """What the server's workers counted for ``anonsign stats``."""
    now = time.time()
    return FileStats.in_directory(stats_dir).read([slug], now)[slug].window(KEPT_SECONDS, now)


def test_posts_past_the_slots_and_queue_are_shed_at_once_and_lose_nothing(
    tmp_path: Path,
    sock: Path,
    stats_dir: Path,
    settings: Settings,
    service: Service,
    organizer: OrganizerSecretKey,
) -> None:
    # A petition that costs what a real one costs, so the slots really fill.
    costly = Service.open(settings.with_overrides(argon2=REAL_ARGON2))
    make_petition(costly, organizer, "busy", IdentifierKind.TEXT)
    costly.close_connections()
    # One worker of two slots (two cores) and no queue: the third post at once is shed.
    env = server_env(
        settings,
        ANONSIGN_WORKERS="1",
        ANONSIGN_HASHING_QUEUE="0",
        ANONSIGN_THREADS="16",
        ANONSIGN_STATS_STORAGE_URI="memory://",
        ANONSIGN_STATS_DIR=str(stats_dir),
    )
    posts = 12
    with serving_on_socket(env, sock, tmp_path / "server.log"):
        circuits = [Circuit(sock, circuit_address(0x5E00 + n)) for n in range(posts)]
        forms = [c.form_token("busy") for c in circuits]
        assert all(forms)
        answers: list[tuple[int, dict[str, str], str] | None] = [None] * posts
        go = threading.Barrier(posts)

        def post(n: int) -> None:
            go.wait()
            answers[n] = circuits[n].post_sign("busy", forms[n] or {}, identifier("busy", n))

        threads = [threading.Thread(target=post, args=(n,)) for n in range(posts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        statuses = Counter(a[0] for a in answers if a)
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[503] > 0, f"nothing was shed: {statuses}"
        shed = [n for n, a in enumerate(answers) if a and a[0] == 503]
        for n in shed:
            _status, headers, page = answers[n] or (0, {}, "")
            assert headers["retry-after"] == "60"
            assert "Nothing was signed" in page
        # A shed post spent nothing: the same form (its token unused) signs now.
        for n in shed:
            status, _headers, _page = circuits[n].post_sign(
                "busy", forms[n] or {}, identifier("busy", n)
            )
            assert status == 200
    assert next(s.signatures for s in service.summaries()) == posts
    # The operator sees it: every thank-you and every shed post, counted once.
    assert counted(stats_dir, "busy") == Counts(accepted=posts, shed=len(shed))


FLOOD_SECONDS = 20
FLOOD_CLIENTS = 24
BUDGET_MIB = 512


@pytest.mark.slow
def test_a_bounded_flood_gets_only_expected_answers_and_keeps_every_thank_you(
    tmp_path: Path,
    sock: Path,
    stats_dir: Path,
    settings: Settings,
    service: Service,
    organizer: OrganizerSecretKey,
) -> None:
    costly = Service.open(settings.with_overrides(argon2=REAL_ARGON2))
    make_petition(costly, organizer, "flood", IdentifierKind.TEXT)
    costly.close_connections()
    # The default limits, and a client that takes a new circuit every few posts (tor
    # gives anyone as many as it asks for): the caps everybody shares must hold it.
    env = server_env(
        settings,
        ANONSIGN_MEMORY_BUDGET_MIB=str(BUDGET_MIB),
        ANONSIGN_RATELIMIT_GLOBAL="600/minute",
        ANONSIGN_RATELIMIT_PETITION="300/minute",
        ANONSIGN_RATELIMIT_CIRCUIT="5/minute",
        ANONSIGN_RATELIMIT_PAGES=BIG,
        ANONSIGN_STATS_STORAGE_URI="memory://",
        ANONSIGN_STATS_DIR=str(stats_dir),
    )
    statuses: Counter[int] = Counter()
    thanked: list[str] = []
    missing_retry_after: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            circuit = Circuit(sock, circuit_address(0x100000 * (n + 1) + i // 3))
            fields = circuit.form_token("flood")
            if fields is None:
                continue
            value = identifier(f"flood{n}", i)
            i += 1
            status, headers, _page = circuit.post_sign("flood", fields, value)
            with lock:
                statuses[status] += 1
                if status == 200:
                    thanked.append(value)
                elif status in (429, 503) and "retry-after" not in headers:
                    missing_retry_after.append(status)

    peak = 0
    with serving_on_socket(env, sock, tmp_path / "server.log") as server:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(FLOOD_CLIENTS)]
        for thread in threads:
            thread.start()
        end = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < end:
            peak = max(peak, rss_kib(group_pids(server.pid)))
            time.sleep(0.25)
        stop.set()
        for thread in threads:
            thread.join(60)
    print(f"flood: {dict(statuses)}, peak server RSS {peak // 1024} MiB")
    assert set(statuses) <= {200, 400, 429, 503}, statuses
    # Past capacity: some are thanked, and the rest limited (429) or shed (503) at once.
    assert statuses[200] > 0, statuses
    assert statuses[429] + statuses[503] > statuses[200], statuses
    assert missing_retry_after == []
    assert peak < BUDGET_MIB * 1024, f"server RSS {peak // 1024} MiB over {BUDGET_MIB} MiB"
    service.publish("flood")
    assert service.checkpoint("flood").size == len(set(thanked))
    kept = stored_dedup_keys(service)
    lost = [v for v in thanked if dedup_key_of(service, "flood", v) not in kept]
    assert lost == [], f"thanked but not in the log: {lost[:5]}"
    # What `anonsign stats` shows of the attack is what the clients were answered.
    assert counted(stats_dir, "flood") == Counts(
        accepted=statuses[200], limited=statuses[429], shed=statuses[503]
    )
