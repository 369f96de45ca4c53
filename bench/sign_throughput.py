"""Benchmark: the sign path over HTTP against raw Argon2id throughput on the same cores.

Argon2id is the deliberate cost of every signature, so the physical limit of the design
is how many dedup keys the machine's cores can derive per second. DESIGN.md asks the
whole sign path (HTTP, CSRF and form token, validation, HPKE sealing, the durable insert)
to reach at least 90% of that limit. Both are measured here in one run, with the petition's real
Argon2id parameters (default 64 MiB, t=3, p=1), so the ratio is meaningful on a noisy
machine.

    .venv/bin/python bench/sign_throughput.py [--seconds 20] [--workers 2] [--clients 4]
    .venv/bin/python bench/sign_throughput.py --baseline /path/to/older/checkout --rounds 3
    .venv/bin/python bench/sign_throughput.py --scaling --rounds 3 --seconds 12
    .venv/bin/python bench/sign_throughput.py --postgres postgresql://postgres@127.0.0.1/postgres
    .venv/bin/python bench/sign_throughput.py --latency --rounds 3 --seconds 15
    .venv/bin/python bench/sign_throughput.py --hosts postgresql://postgres@127.0.0.1/postgres
    .venv/bin/python bench/sign_throughput.py --cpu --rounds 3 --seconds 15

Raw limit: ``--workers`` processes derive keys back to back for ``--seconds``.
End to end: a real ``anonsign serve`` with ``--workers`` gunicorn workers on a fresh
SQLite instance; ``--clients`` threads each keep one session (cookie and CSRF token) and
post distinct identifiers with a contact, for ``--seconds``. The client threads sleep on
the network almost all the time, so they take little from the server's cores.

With ``--baseline CHECKOUT`` (another anonsign checkout with its own ``.venv``, such as
the commit before the store was encrypted), each round runs a slice of raw hashing, a
slice of the baseline's server, a slice of raw hashing and a slice of this checkout's
server, so that a machine whose load drifts hits both alike; the ratios of each round
are printed, then their medians.

With ``--latency``, each round measures the capacity as above (closed loop: every client
posts again at once), then offers the same server new signers arriving at random (a
Poisson process, each a new session loading the page and posting) at 50% and at 90% of
that capacity, each for twice ``--seconds``, and prints the p50/p95/p99 latency from
each signer's arrival to the thank-you page, and of the post alone.

With ``--hosts ADMIN_URL``, each round runs raw hashing in one process, one host (a
network namespace with one worker and one hashing slot) of an instance on PostgreSQL
and Redis, raw hashing in two processes, then two such hosts of one instance; the client
threads split across the hosts. Needs root for the namespaces (tests/cluster.py).

With ``--cpu``, each round measures raw hashing, then the closed loop while counting the
CPU time of the server's whole process group (workers retired meanwhile included) and of
the client threads, per signature: where the cores go beside the hash.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import closed_loop_clients, in_processes, one_against_two  # noqa: E402


def _derive_for(seconds: float, params: tuple[int, int, int], out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from anonsign.crypto.dedup import dedup_key, new_pepper, new_salt
    from anonsign.crypto.kdf import Argon2Params

    argon2 = Argon2Params(*params)
    pepper, salt = new_pepper(), new_salt()
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        dedup_key(pepper=pepper, salt=salt, kind="phone", normalized=f"+9936{count:07d}",
                  params=argon2)  # fmt: skip
        count += 1
    out.put(count)


def raw_argon2(seconds: float, workers: int, params: tuple[int, int, int]) -> float:
    return sum(in_processes(_derive_for, (seconds, params), workers)) / seconds


@contextmanager
def served(
    workers: int, anonsign: str | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """A real server run by the ``anonsign`` command given, on a fresh demo instance;
    yields its base URL."""
    with served_process(workers, anonsign, extra_env) as (base, _process):
        yield base


@contextmanager
def served_process(
    workers: int, anonsign: str | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`served`, yielding the server's process too (gunicorn's master, which leads
    the process group of its workers)."""

    from tests.live import ANONSIGN, Browser, free_port, running

    command = anonsign or ANONSIGN
    with (
        tempfile.TemporaryDirectory(prefix="anonsign-bench-") as tmp,
        tempfile.TemporaryDirectory(prefix="anonsign-bench-stats-", dir="/dev/shm") as stats_dir,
    ):
        instance = Path(tmp) / "instance"
        env = {
            "ANONSIGN_INSTANCE": str(instance),
            "ANONSIGN_WORKERS": str(workers),
            "ANONSIGN_PUBLISHER_PERIOD": "0",
            # Each client posts the moment it has the page: the two-second minimum would
            # measure the clients' waiting, not the server (a baseline ignores it).
            "ANONSIGN_FORM_MIN_SECONDS": "0",
            # Every client is one peer on loopback: the per-peer limits would measure the
            # limiter, not the sign path (a baseline without limits ignores these).
            **{
                f"ANONSIGN_RATELIMIT_{layer}": "1000000/minute"
                for layer in ("GLOBAL", "PETITION", "CIRCUIT", "PAGES")
            },
            # The operator stats count as in production, on tmpfs, removed afterwards.
            "ANONSIGN_STATS_DIR": str(stats_dir),
            **(extra_env or {}),
        }
        subprocess.run(  # noqa: S603 - our own command, from this checkout or the baseline
            [command, "demo", "--no-serve"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        port = free_port()
        import tests.live

        tests.live.ANONSIGN = command  # `running` starts this checkout's or the baseline's
        try:
            log = Path(tmp) / "server.log"
            with running(["serve", "--port", str(port)], env, port, log) as process:
                base = f"http://127.0.0.1:{port}"
                # Templates compiled, catalogs and caches loaded, in every worker (the
                # kernel hands connections to whichever worker wakes first, so several).
                for n in range(4 * workers):
                    Browser(base).sign("demo", f"+993 65 99{n:04d}", "")
                yield base, process
        finally:
            tests.live.ANONSIGN = ANONSIGN


def closed_loop(
    base: str | list[str], seconds: float, clients: int, slug: str = "demo"
) -> tuple[float, int]:
    """Signatures per second from ``clients`` threads posting back to back, and non-200s.

    With several base URLs (hosts), client ``n`` signs on host ``n`` modulo their number.
    """
    from tests.live import Browser

    bases = [base] if isinstance(base, str) else base
    browsers = [Browser(bases[n % len(bases)]) for n in range(clients)]

    def sign(n: int, i: int) -> bool:
        status, _ = browsers[n].sign(slug, f"+993 65 {n}{i:05d}"[:14], f"bench {n}-{i}")
        return status == 200

    return closed_loop_clients(clients, seconds, sign)


@dataclass
class Paced:
    """What signers arriving at random at a given mean rate met."""

    #: From each signer's arrival to the thank-you page: the page load and the post.
    whole: list[float]
    #: The post alone (the signature itself).
    post: list[float]
    #: Answers other than 200, by status (503: shed, the gate's slots and queue full).
    refused: dict[int, int]


def open_loop(base: str, rate: float, seconds: float, seed: int) -> Paced:
    """New signers (each a new session) arriving as a Poisson process of mean ``rate``/s.

    Latency counts from the moment a signer was due, so a client thread that was busy
    when one was due does not hide the wait (no coordinated omission).
    """
    import queue
    import random

    from tests.live import CSRF, FORM_TOKEN, Browser

    arrivals: queue.Queue[tuple[int, float] | None] = queue.Queue()
    result = Paced([], [], {})
    lock = threading.Lock()

    def signer() -> None:
        while (job := arrivals.get()) is not None:
            n, due = job
            browser = Browser(base)
            status, page = browser.request("/p/demo")
            posted = time.perf_counter()
            if status == 200:
                csrf, token = CSRF.search(page), FORM_TOKEN.search(page)
                assert csrf is not None, "no CSRF token on the petition page"
                assert token is not None, "no form token on the petition page"
                form = {
                    "csrf_token": csrf.group(1),
                    "form_token": token.group(1),
                    "website": "",
                    "identifier": f"+993 65 {n:06d}",
                    "consent": "y",
                }
                status, _ = browser.request("/p/demo/sign", form)
            done = time.perf_counter()
            with lock:
                if status == 200:
                    result.whole.append(done - due)
                    result.post.append(done - posted)
                else:
                    result.refused[status] = result.refused.get(status, 0) + 1

    # Enough threads that one is always free, whatever the burst: a signer never waits
    # for the load generator.
    threads = [threading.Thread(target=signer) for _ in range(48)]
    for thread in threads:
        thread.start()
    chance = random.Random(seed)
    due = time.perf_counter()
    deadline = due + seconds
    # Six digits after +993 65, from 500000 on: numbers the closed loop (0xxxxx to
    # 3xxxxx) never posts, and apart for each seed of one server's run.
    n = 500_000 + (seed % 10) * 45_000
    while True:
        due += chance.expovariate(rate)
        if due >= deadline:
            break
        time.sleep(max(0.0, due - time.perf_counter()))
        arrivals.put((n, due))
        n += 1
    for _ in threads:
        arrivals.put(None)
    for thread in threads:
        thread.join()
    return result


def end_to_end(
    seconds: float,
    workers: int,
    clients: int,
    anonsign: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[float, int]:
    """Signatures per second through a real server run by the ``anonsign`` command given."""
    with served(workers, anonsign, extra_env) as base:
        return closed_loop(base, seconds, clients)


def _print_round(round_number: int, name: str, raw: float, http: float, errors: int) -> None:
    print(f"round {round_number}, {name}: raw {raw:.2f}/s, over HTTP {http:.2f}/s "
          f"({errors} non-200), ratio {http / raw:.1%}", flush=True)  # fmt: skip


def _print_medians(ratios: dict[str, list[float]]) -> None:
    import statistics

    for name, values in ratios.items():
        print(f"{name}: median ratio {statistics.median(values):.1%} "
              f"(rounds: {', '.join(f'{v:.1%}' for v in values)})")  # fmt: skip


def compare(args: argparse.Namespace, params: tuple[int, int, int]) -> None:
    """Interleaved rounds: raw, baseline, raw, this checkout; ratios per round."""
    baseline = str(Path(args.baseline).resolve() / ".venv" / "bin" / "anonsign")
    if not Path(baseline).exists():
        raise SystemExit(f"no {baseline}: run `make install` in the baseline checkout first")
    ratios: dict[str, list[float]] = {"baseline": [], "this checkout": []}
    for round_number in range(1, args.rounds + 1):
        for name, command in (("baseline", baseline), ("this checkout", None)):
            raw = raw_argon2(args.seconds, args.workers, params)
            http, errors = end_to_end(args.seconds, args.workers, args.clients, command)
            ratios[name].append(http / raw)
            _print_round(round_number, name, raw, http, errors)
    _print_medians(ratios)


def scaling(args: argparse.Namespace, params: tuple[int, int, int]) -> None:
    """Interleaved rounds: raw and the server on 1 process, then on 2; scaling per round.

    The server's hashing slots are the host's (web.capacity), so one worker would hash on
    both cores with its threads; its memory budget is set to one or two hashes so that
    the server, like the raw slice, uses one core or two.
    """
    per_hash_mib = -(-params[1] // 1024)

    def measure(n: int) -> tuple[float, float, int]:
        raw = raw_argon2(args.seconds, n, params)
        budget = {"ANONSIGN_MEMORY_BUDGET_MIB": str(n * per_hash_mib)}
        http, errors = end_to_end(args.seconds, n, 2 * n, None, budget)
        return raw, http, errors

    one_against_two(args.rounds, measure, "process(es)")


def databases(args: argparse.Namespace, params: tuple[int, int, int]) -> None:
    """Interleaved rounds: raw, the server on SQLite, raw, the server on PostgreSQL.

    PostgreSQL is the server at ``--postgres`` (an admin URL); each slice gets a fresh
    database, dropped afterwards.
    """
    import secrets

    import psycopg

    ratios: dict[str, list[float]] = {"SQLite": [], "PostgreSQL": []}
    for round_number in range(1, args.rounds + 1):
        for name in ratios:
            extra: dict[str, str] = {}
            database = f"anonsign_bench_{secrets.token_hex(4)}"
            if name == "PostgreSQL":
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{database}"')
                base = args.postgres.rsplit("/", 1)[0]
                extra["ANONSIGN_DATABASE_URL"] = f"{base}/{database}"
            try:
                raw = raw_argon2(args.seconds, args.workers, params)
                http, errors = end_to_end(args.seconds, args.workers, args.clients, None, extra)
            finally:
                if name == "PostgreSQL":
                    with psycopg.connect(args.postgres, autocommit=True) as admin:
                        admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
            ratios[name].append(http / raw)
            _print_round(round_number, name, raw, http, errors)
    _print_medians(ratios)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database on the server at ``admin_url``; its URL, dropped after."""
    import secrets

    import psycopg

    database = f"anonsign_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{database}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def on_hosts(
    args: argparse.Namespace, count: int, params: tuple[int, int, int]
) -> tuple[float, int]:
    """Signatures per second on ``count`` hosts (network namespaces, one worker and one
    hashing slot each) of one instance on PostgreSQL and Redis (tests/cluster.py)."""
    from tests.cluster import NoNamespaces, NoUnixSocket, hosts_on_one_database

    from anonsign.crypto.kdf import Argon2Params
    from anonsign.crypto.keyfile import OrganizerSecretKey
    from anonsign.domain.identifiers import IdentifierKind
    from anonsign.domain.petitions import Recipient

    host_env = {
        "ANONSIGN_WORKERS": "1",
        "ANONSIGN_MEMORY_BUDGET_MIB": str(-(-params[1] // 1024)),  # one hash at a time
        "ANONSIGN_PUBLISHER_PERIOD": "0",
        "ANONSIGN_FORM_MIN_SECONDS": "0",
        **{
            f"ANONSIGN_RATELIMIT_{layer}": "1000000/minute"
            for layer in ("GLOBAL", "PETITION", "CIRCUIT", "PAGES")
        },
    }
    with (
        fresh_database(args.hosts) as database,
        tempfile.TemporaryDirectory(prefix="anonsign-bench-hosts-") as tmp,
    ):
        try:
            made = hosts_on_one_database(
                Path(tmp), database, args.redis, count=count, host_env=host_env,
                argon2=Argon2Params(*params),
            )  # fmt: skip
            with made as cluster:
                cluster.service.create_petition(
                    slug="demo",
                    title="Bench",
                    text="A petition to sign.",
                    identifier_kind=IdentifierKind.TEXT,
                    recipients=[Recipient("bench", OrganizerSecretKey.generate().public_key())],
                )
                cluster.start()
                bases = [host.base_url for host in cluster.hosts]
                for base in bases:
                    closed_loop(base, 0.5, 1)  # templates compiled, connections made
                return closed_loop(bases, args.seconds, 2 * count)
        except (NoNamespaces, NoUnixSocket) as exc:
            raise SystemExit(f"one host against two needs network namespaces: {exc}") from None


def hosts(args: argparse.Namespace, params: tuple[int, int, int]) -> None:
    """Interleaved rounds: raw on one core, one host; raw on two cores, two hosts."""

    def measure(n: int) -> tuple[float, float, int]:
        raw = raw_argon2(args.seconds, n, params)
        http, errors = on_hosts(args, n, params)
        return raw, http, errors

    one_against_two(args.rounds, measure, "host(s)")


def _percentiles(values: list[float]) -> str:
    import statistics

    if len(values) < 2:
        return "too few answers"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return " / ".join(f"{cuts[p - 1] * 1000:.0f}" for p in (50, 95, 99))


def latency(args: argparse.Namespace, params: tuple[int, int, int]) -> None:
    """Rounds: raw, then in one server the closed-loop capacity, then signers arriving at
    random at 50% and at 90% of it; latency percentiles of each load."""
    for round_number in range(1, args.rounds + 1):
        raw = raw_argon2(args.seconds, args.workers, params)
        with served(args.workers) as base:
            capacity, errors = closed_loop(base, args.seconds, args.clients)
            print(f"round {round_number}: raw {raw:.2f}/s, capacity over HTTP {capacity:.2f}/s "
                  f"({errors} non-200), ratio {capacity / raw:.1%}", flush=True)  # fmt: skip
            for share in (0.5, 0.9):
                rate = share * capacity
                paced = open_loop(
                    base, rate, args.seconds * 2, seed=round_number * 10 + int(share * 10)
                )
                if 400 in paced.refused:
                    # The bench's own forms are wrong: no figure it prints would mean anything.
                    raise SystemExit(f"{paced.refused[400]} posts were refused as bad input (400)")
                print(f"  {share:.0%} ({rate:.2f}/s offered, {len(paced.whole)} signed, "
                      f"refused {paced.refused or 'none'}): p50/p95/p99 ms, page and post "
                      f"{_percentiles(paced.whole)}; the post alone {_percentiles(paced.post)}",
                      flush=True)  # fmt: skip


def group_cpu_seconds(leader: int) -> float:
    """CPU seconds (user and system) of every process in ``leader``'s process group,
    with what the leader's workers that have already exited spent (its children's times,
    which gunicorn's reaping adds): a worker retired mid-measurement is still counted."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # Fields after the command: state, ppid, pgrp, ..., utime (11), stime (12),
        # cutime (13), cstime (14).
        if int(fields[2]) != leader:
            continue
        total += int(fields[11]) + int(fields[12])
        if int(entry) == leader:
            total += int(fields[13]) + int(fields[14])
    return total / tick


def cpu_split(args: argparse.Namespace, params: tuple[int, int, int]) -> None:
    """Rounds: raw Argon2id, then the closed loop with the CPU of the server's processes
    and of the client counted per signature; what the server spends beside the hash is
    the difference between its CPU per signature and a raw hash's."""
    import resource

    def own_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    for round_number in range(1, args.rounds + 1):
        raw = raw_argon2(args.seconds, args.workers, params)
        per_hash = 1000 * args.workers / raw  # the raw slice keeps every core busy
        with served_process(args.workers) as (base, process):
            server0, client0 = group_cpu_seconds(process.pid), own_cpu()
            rate, errors = closed_loop(base, args.seconds, args.clients)
            server1, client1 = group_cpu_seconds(process.pid), own_cpu()
        signatures = rate * args.seconds
        server = 1000 * (server1 - server0) / signatures
        client = 1000 * (client1 - client0) / signatures
        print(f"round {round_number}: raw {raw:.2f}/s ({per_hash:.0f} core-ms a hash), "
              f"over HTTP {rate:.2f}/s ({errors} non-200), ratio {rate / raw:.1%}; per "
              f"signature: server {server:.1f} core-ms ({server - per_hash:.1f} beside the "
              f"hash), client {client:.1f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--baseline", help="another anonsign checkout (with .venv) to compare")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (--baseline, --scaling)"
    )
    parser.add_argument(
        "--scaling", action="store_true", help="one process against two, interleaved rounds"
    )
    parser.add_argument(
        "--hosts",
        metavar="ADMIN_URL",
        help="one host against two (network namespaces, as root) on the PostgreSQL server "
        "at ADMIN_URL and the Redis at --redis, interleaved rounds",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/13", help="the Redis for --hosts"
    )
    parser.add_argument(
        "--latency",
        action="store_true",
        help="p50/p95/p99 at 50%% and 90%% of the measured capacity, signers arriving at random",
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="SQLite against PostgreSQL (a server URL such as "
        "postgresql://postgres@127.0.0.1:5432/postgres), interleaved rounds",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="the server's and the client's CPU per signature, beside the hash, in rounds",
    )
    args = parser.parse_args()
    from anonsign.config import DEFAULT_ARGON2

    params = (DEFAULT_ARGON2.time_cost, DEFAULT_ARGON2.memory_kib, DEFAULT_ARGON2.parallelism)
    if args.baseline:
        compare(args, params)
        return
    if args.scaling:
        scaling(args, params)
        return
    if args.postgres:
        databases(args, params)
        return
    if args.latency:
        latency(args, params)
        return
    if args.hosts:
        hosts(args, params)
        return
    if args.cpu:
        cpu_split(args, params)
        return
    raw = raw_argon2(args.seconds, args.workers, params)
    print(f"raw Argon2id ({DEFAULT_ARGON2.describe()}), {args.workers} processes: {raw:.2f}/s")
    http, errors = end_to_end(args.seconds, args.workers, args.clients)
    print(f"sign path over HTTP, {args.workers} workers, {args.clients} clients: {http:.2f}/s "
          f"({errors} non-200 answers)")  # fmt: skip
    print(f"ratio: {http / raw:.1%} of the raw Argon2id limit (target: at least 90%)")


if __name__ == "__main__":
    main()
