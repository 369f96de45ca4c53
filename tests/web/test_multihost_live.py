"""Two hosts, one truth: two ``anonsign serve`` hosts on one PostgreSQL and one Redis.

Each host is a network namespace of its own (tests/netns.py) with its own address, its
own instance folder and its own copy of the secrets, the way an operator deploys them
(deploy/README.md, "Several hosts"): the sealed master key copied and unlocked on each
host, the session and log keys handed over as systemd credentials
(``$CREDENTIALS_DIRECTORY``), the Redis URI as a credential too. Each host reaches the
databases through unix sockets, the only way out of its namespace. The client reaches
each host at its own address, and loads a form from one host and posts it to the other
as often as to the same one (a Tor client's next circuit may land on either host behind
Onionbalance). What is shown:

- one identifier posted 32 times at once, split across the hosts, counts once, round
  after round; 100 distinct identifiers across the hosts count 100;
- publishers on both hosts at once (``anonsign log publish`` in each namespace, and each
  host's background publishers) while signatures arrive sign only checkpoints that the
  project's own consistency proofs join into one append-only log;
- a host killed (SIGKILL to its whole process group) under load loses no signature it
  thanked for, and the other host goes on signing;
- a global cap set low is one counter for both hosts, in Redis.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import re
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from anonsign.audit.checkpoint import Checkpoint
from anonsign.audit.merkle import verify_consistency
from anonsign.crypto.notes import NoteVerifier
from anonsign.domain.identifiers import IdentifierKind
from anonsign.service import Service
from anonsign.storage.models import (
    CheckpointRow,
    LogLeafRow,
    PendingSignatureRow,
)
from tests.cluster import PORT, Cluster, Host, NoNamespaces, NoUnixSocket, hosts_on_one_database
from tests.conftest import CHEAP_ARGON2, SUBMITTED, make_petition
from tests.live import ANONSIGN, CSRF, FORM_TOKEN
from tests.security.test_crash import dedup_key_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("redis")]

SLUG = "multi"
#: Concurrent posts of one identifier, and how many times that is tried.
SAME_AT_ONCE = 32
SAME_ROUNDS = 5
DISTINCT = 100


@pytest.fixture
def cluster(
    tmp_path: Path, postgres_url: str, redis_url: str, organizer: object
) -> Iterator[Cluster]:
    host_env = {
        "ANONSIGN_WORKERS": "2",
        # Room at each host's hashing gate for its 16 of the 32 posts at once
        # (2 slots + 2 x 7 waiting), rather than shedding some with 503; and the
        # threads that follow (2 + 14 + 4 per worker, so 21 connections) for two
        # hosts fit PostgreSQL's default 100 connections (storage.pool).
        "ANONSIGN_HASHING_QUEUE": "7",
        # Every worker of both hosts publishes every second or so, whatever waits.
        "ANONSIGN_PUBLISHER_PERIOD": "1",
        "ANONSIGN_PUBLISH_MIN": "1",
        "ANONSIGN_PUBLISH_INTERVAL": "0",
    }
    try:
        with hosts_on_one_database(
            tmp_path, postgres_url, redis_url, count=2, host_env=host_env, argon2=CHEAP_ARGON2
        ) as built:
            make_petition(built.service, organizer, SLUG, IdentifierKind.TEXT)  # type: ignore[arg-type]
            yield built
            for host in built.hosts:
                host.stop()
                assert "unexpected error" not in host.log.read_text(), host.log.read_text()
                assert "publishing failed" not in host.log.read_text(), host.log.read_text()
    except NoNamespaces as refused:
        print(f"multi-host test skipped: {refused}")
        pytest.skip(f"no network namespaces here: {refused}")
    except NoUnixSocket as missing:
        pytest.skip(f"{missing}, the way out of a host's namespace")


# --- a client without JavaScript, which may post a form to another host than its own ----


@dataclass(frozen=True)
class Form:
    """A rendered sign form: the cookie it came with and its hidden fields."""

    cookie: str
    fields: dict[str, str]


def exchange(
    host: Host,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float,
) -> tuple[int, list[tuple[str, str]], str] | None:
    """One request to ``host``: its status, headers and text, or None if it did not answer.

    A host killed mid-answer cuts the body short (``IncompleteRead``, an
    ``HTTPException`` rather than an ``OSError``): that is no answer too. The
    connection is closed whatever happens, so no socket outlives the test.
    """
    conn = http.client.HTTPConnection(host.net.address, PORT, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        text = answer.read().decode("utf-8")
        return answer.status, answer.getheaders(), text
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def get_form(host: Host) -> Form | None:
    """Load the petition page from ``host``; None if the host does not answer."""
    answered = exchange(host, "GET", f"/p/{SLUG}", timeout=30)
    if answered is None:
        return None
    status, headers, page = answered
    cookies = [v.split(";", 1)[0] for k, v in headers if k.lower() == "set-cookie"]
    csrf, token = CSRF.search(page), FORM_TOKEN.search(page)
    assert status == 200, (status, page[:300])
    assert csrf
    assert token
    fields = {"csrf_token": csrf.group(1), "form_token": token.group(1), "website": ""}
    return Form("; ".join(cookies), fields)


def post_form(host: Host, form: Form, identifier: str) -> int:
    """Post ``form`` to ``host``; its status, or 0 when the host does not answer."""
    SUBMITTED.add(identifier)
    body = "&".join(
        f"{k}={v}" for k, v in {**form.fields, "identifier": identifier, "consent": "y"}.items()
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": form.cookie}
    answered = exchange(host, "POST", f"/p/{SLUG}/sign", body.encode(), headers, timeout=60)
    if answered is None:
        return 0
    status, _headers, page = answered
    if status == 200:
        assert "Thank you" in page
    return status


def signatures(service: Service) -> int:
    return next(s.signatures for s in service.summaries() if s.petition.slug == SLUG)


def log_entries(service: Service) -> set[bytes]:
    with service.db.reading() as session:
        return {bytes(e) for e in session.scalars(select(LogLeafRow.entry))}


def where_they_are(
    service: Service, thanked: set[bytes], signers: Signers, final: Checkpoint
) -> str:
    """For a failure: where each thanked key is (log or pending), and when it was thanked."""
    with service.db.reading() as session:
        pending = {bytes(k) for k in session.scalars(select(PendingSignatureRow.dedup_key))}
        sizes = sorted(session.scalars(select(CheckpointRow.size)))
    logged = log_entries(service)
    missing = thanked - logged
    when = {dedup_key_of(service, SLUG, v): (host, t) for v, host, t in signers.thanked}
    return (
        f"final size {final.size}, {len(thanked)} thanked, {len(logged)} in the log, "
        f"{len(pending)} pending, checkpoint sizes "
        f"...{sizes[-6:]}; missing from the log: "
        + "; ".join(
            f"{k.hex()[:12]} (thanked by {when[k][0]} at {when[k][1]:.2f}, pending: {k in pending})"
            for k in sorted(missing)
        )
        + f"; in the log but not thanked: {len(logged - thanked)}"
    )


def identifier(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(4)}"


# --- dedup and counting -----------------------------------------------------------------


def test_one_identifier_signed_at_once_on_both_hosts_counts_once(cluster: Cluster) -> None:
    cluster.start()
    a, b = cluster.hosts
    service = cluster.service
    values = []
    for _round in range(SAME_ROUNDS):
        before = signatures(service)
        value = identifier("same")
        values.append(value)
        # Forms from A and B alike, each posted to A or B: half of them cross hosts.
        forms = [get_form((a, b)[i % 2]) for i in range(SAME_AT_ONCE)]
        targets = [(a, b)[(i // 2) % 2] for i in range(SAME_AT_ONCE)]
        go = threading.Barrier(SAME_AT_ONCE)

        def post(
            i: int,
            value: str = value,
            forms: list[Form | None] = forms,
            targets: list[Host] = targets,
            go: threading.Barrier = go,
        ) -> int:
            form = forms[i]
            assert form is not None
            go.wait(30)
            return post_form(targets[i], form, value)

        with ThreadPoolExecutor(SAME_AT_ONCE) as pool:
            statuses = list(pool.map(post, range(SAME_AT_ONCE)))
        # The same page for the first and every repeat, on either host.
        assert statuses == [200] * SAME_AT_ONCE, Counter(statuses)
        assert signatures(service) == before + 1
    service.publish(SLUG)
    assert service.checkpoint(SLUG).size == SAME_ROUNDS
    assert log_entries(service) == {dedup_key_of(service, SLUG, v) for v in values}
    print(f"{SAME_ROUNDS} rounds of {SAME_AT_ONCE} posts of one identifier: counted once each")


def test_distinct_identifiers_across_both_hosts_all_count(cluster: Cluster) -> None:
    cluster.start()
    a, b = cluster.hosts
    service = cluster.service
    values = [identifier(f"distinct{n:03d}") for n in range(DISTINCT)]

    def sign(n: int) -> int:
        form = get_form((a, b)[n % 2])
        assert form is not None
        return post_form((a, b)[(n // 2) % 2], form, values[n])

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(sign, range(DISTINCT)))
    took = time.monotonic() - started
    assert statuses == [200] * DISTINCT, Counter(statuses)
    assert signatures(service) == DISTINCT
    service.publish(SLUG)
    assert service.checkpoint(SLUG).size == DISTINCT
    assert log_entries(service) == {dedup_key_of(service, SLUG, v) for v in values}
    print(f"{DISTINCT} distinct identifiers across two hosts in {took:.1f} s: counted {DISTINCT}")


# --- publication --------------------------------------------------------------------------

PUBLISH_ROUNDS = 4
PUBLISHED = re.compile(r"published a checkpoint of size (\d+)")


class Signers:
    """Threads that sign distinct identifiers at both hosts until stopped."""

    def __init__(self, hosts: list[Host], threads: int) -> None:
        self.hosts = hosts
        self.statuses: Counter[int] = Counter()
        #: (identifier, the host that thanked for it, when)
        self.thanked: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def _run(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            host = self.hosts[(n + i) % len(self.hosts)]
            i += 1
            form = get_form(host)
            if form is None:
                with self._lock:
                    self.statuses[0] += 1
                time.sleep(0.05)
                continue
            value = identifier(f"load{n}")
            status = post_form(host, form, value)
            with self._lock:
                self.statuses[status] += 1
                if status == 200:
                    self.thanked.append((value, host.name, time.monotonic()))

    def count(self, host: str, since: float = 0.0) -> int:
        """Thank-you pages ``host`` gave (since a moment of ``time.monotonic()``)."""
        with self._lock:
            return sum(1 for _v, name, when in self.thanked if name == host and when > since)

    def __enter__(self) -> Signers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)


def fetch(host: Host, path: str) -> tuple[int, str]:
    answered = exchange(host, "GET", path, timeout=30)
    if answered is None:
        return 0, ""
    status, _headers, body = answered
    return status, body


def test_publishers_on_both_hosts_at_once_sign_one_consistent_log(cluster: Cluster) -> None:
    cluster.start()
    a, b = cluster.hosts
    service = cluster.service
    verifier = NoteVerifier.from_verifier_key(service.verifier_key())
    notes: set[str] = set()
    by_cli: list[int] = []
    rounds: list[float] = []
    started = time.monotonic()
    with Signers(cluster.hosts, threads=4) as signers:
        for _round in range(PUBLISH_ROUNDS):
            round_started = time.monotonic()
            # `anonsign log publish` in both namespaces at the same moment ...
            runs = [
                subprocess.Popen(
                    host.net.command(ANONSIGN, "log", "publish", SLUG),
                    env=host.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for host in (a, b)
            ]
            for run in runs:
                out, _ = run.communicate(timeout=120)
                assert run.returncode == 0, out
                by_cli += [int(size) for size in PUBLISHED.findall(out)]
            rounds.append(time.monotonic() - round_started)
            # ... while both hosts' background publishers run too, and an auditor reads
            # the checkpoint from either host.
            for host in (a, b):
                status, note = fetch(host, f"/p/{SLUG}/checkpoint")
                assert status == 200
                notes.add(note)
    took = time.monotonic() - started
    assert signers.statuses[200] > 0, signers.statuses
    assert set(signers.statuses) == {200}, signers.statuses
    service.publish(SLUG)
    with service.db.reading() as session:
        notes.update(session.scalars(select(CheckpointRow.note)))
    # Every checkpoint is signed by the one log key, whichever host signed it.
    checkpoints = sorted(
        {Checkpoint.parse(verifier.open(note)) for note in notes}, key=lambda c: c.size
    )
    sizes = [c.size for c in checkpoints]
    assert len(sizes) == len(set(sizes)), "two checkpoints of one size: a forked log"
    assert len(checkpoints) >= PUBLISH_ROUNDS, sizes  # the publishers really took turns
    assert by_cli, "no `log publish` published anything"
    assert set(by_cli) <= set(sizes)
    # Each checkpoint extends the one before it, by the log's own consistency proofs,
    # asked of either host (RFC 9162; audit.merkle verifies).
    for n, (old, new) in enumerate(itertools.pairwise(checkpoints)):
        if old.size == 0:
            continue  # the empty tree is a prefix of every tree (and has no proof to ask)
        host = (a, b)[n % 2]
        status, body = fetch(host, f"/p/{SLUG}/log/consistency?from={old.size}&to={new.size}")
        assert status == 200, body
        proof = [base64.b64decode(h) for h in json.loads(body)["hashes"]]
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    final = checkpoints[-1]
    thanked = {dedup_key_of(service, SLUG, v) for v, _host, _when in signers.thanked}
    assert final.size == len(thanked), where_they_are(service, thanked, signers, final)
    assert log_entries(service) == thanked
    print(
        f"publishers: {len(checkpoints)} checkpoints (sizes {sizes[:3]}...{sizes[-1]}), "
        f"{len(by_cli)} by `log publish`, all consistent; {signers.statuses[200]} signed "
        f"in {took:.1f} s; two `log publish` at once took {min(rounds):.1f}-{max(rounds):.1f} s"
    )


# --- a host dies --------------------------------------------------------------------------

#: Thank-you pages each host must have given, before and after the kill.
THANKED_BEFORE = 12
THANKED_AFTER = 12
LOAD_TIMEOUT = 90.0


def wait_until(check: Callable[[], bool], timeout: float = LOAD_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the load made no progress"
        time.sleep(0.1)


def test_a_killed_host_loses_nothing_it_acknowledged(cluster: Cluster) -> None:
    cluster.start()
    a = cluster.hosts[0]
    service = cluster.service
    with Signers(cluster.hosts, threads=8) as signers:
        # Killed mid-load, once both hosts have thanked a few signers each.
        wait_until(lambda: signers.count("a") >= THANKED_BEFORE <= signers.count("b"))
        a.kill()
        killed_at = time.monotonic()
        wait_until(lambda: signers.count("b", since=killed_at) >= THANKED_AFTER)
    assert a.process is not None
    assert a.process.returncode == -signal.SIGKILL
    by_host = Counter(name for _v, name, _when in signers.thanked)
    after = [v for v, name, when in signers.thanked if name == "b" and when > killed_at]
    assert by_host["a"] > 0, by_host
    assert after, "host b signed nothing after a was killed"
    # Only thank-you pages, and no answer at all from the dead host: never an error page.
    assert set(signers.statuses) <= {200, 0}, signers.statuses
    service.publish(SLUG)
    kept = log_entries(service)
    lost = [
        (v, name)
        for v, name, _when in signers.thanked
        if dedup_key_of(service, SLUG, v) not in kept
    ]
    assert lost == [], f"thanked but not in the log: {lost[:5]}"
    print(
        f"killed host a: {by_host['a']} thanked by a, {by_host['b']} by b "
        f"({len(after)} after the kill), {len(kept)} in the log, none lost"
    )


# --- rate limits --------------------------------------------------------------------------

GLOBAL_CAP = 6


def test_the_global_cap_is_one_counter_for_both_hosts(cluster: Cluster) -> None:
    # A window that starts with its first hit (limits' fixed window in Redis), so the
    # test never straddles two of them.
    cluster.start(ANONSIGN_RATELIMIT_GLOBAL=f"{GLOBAL_CAP}/hour")
    a, b = cluster.hosts

    def sign_at(host: Host) -> int:
        form = get_form(host)
        assert form is not None
        return post_form(host, form, identifier("capped"))

    on_a = [sign_at(a) for _ in range(4)]
    on_b = [sign_at(b) for _ in range(4)]
    again_a = sign_at(a)
    # Four on A, then B has only what is left of the one cap: two, then refusals.
    assert (on_a, on_b, again_a) == ([200] * 4, [200, 200, 429, 429], 429), _limiter_state(cluster)
    assert signatures(cluster.service) == GLOBAL_CAP
    keys = redis.Redis.from_url(cluster.redis_url).keys()
    assert keys, "nothing was counted in Redis"
    for host in cluster.hosts:
        # The limiter keys its counters by no address, the hosts' clients' included.
        assert not [k for k in keys if host.net.gateway.encode() in k], keys


def _limiter_state(cluster: Cluster) -> str:
    """What a failed cap assertion needs to be understood: every counter in Redis, its
    time to live, Redis's uptime (a restart empties it) and the end of each host's log."""
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        counters = {key.decode(): (client.get(key), client.ttl(key)) for key in client.scan_iter()}
        uptime = client.info("server").get("uptime_in_seconds")
    finally:
        client.close()
    logs = "\n".join(
        f"--- host {host.name} ---\n" + "\n".join(host.log.read_text().splitlines()[-30:])
        for host in cluster.hosts
    )
    return f"redis counters {counters}, redis up {uptime} s\n{logs}"
