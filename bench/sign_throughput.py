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
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [
        multiprocessing.Process(target=_derive_for, args=(seconds, params, queue))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    total = sum(queue.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def end_to_end(
    seconds: float,
    workers: int,
    clients: int,
    anonsign: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[float, int]:
    """Signatures per second through a real server run by the ``anonsign`` command given."""
    import subprocess

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
        counts = [0] * clients
        errors = [0] * clients
        stop = threading.Event()

        def client(n: int) -> None:
            browser = Browser(f"http://127.0.0.1:{port}")
            i = 0
            while not stop.is_set():
                status, _ = browser.sign("demo", f"+993 65 {n}{i:05d}"[:14], f"bench {n}-{i}")
                i += 1
                if status == 200:
                    counts[n] += 1
                else:
                    errors[n] += 1

        import tests.live

        tests.live.ANONSIGN = command  # `running` starts this checkout's or the baseline's
        try:
            with running(["serve", "--port", str(port)], env, port, Path(tmp) / "server.log"):
                threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
                warm = Browser(f"http://127.0.0.1:{port}")
                warm.sign("demo", "+993 65 999999", "")
                started = time.perf_counter()
                for thread in threads:
                    thread.start()
                time.sleep(seconds)
                stop.set()
                for thread in threads:
                    thread.join()
                elapsed = time.perf_counter() - started
        finally:
            tests.live.ANONSIGN = ANONSIGN
        return sum(counts) / elapsed, sum(errors)


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
    import statistics

    per_hash_mib = -(-params[1] // 1024)
    results: dict[int, dict[str, list[float]]] = {n: {"raw": [], "http": []} for n in (1, 2)}
    for round_number in range(1, args.rounds + 1):
        for n in (1, 2):
            raw = raw_argon2(args.seconds, n, params)
            budget = {"ANONSIGN_MEMORY_BUDGET_MIB": str(n * per_hash_mib)}
            http, errors = end_to_end(args.seconds, n, 2 * n, None, budget)
            results[n]["raw"].append(raw)
            results[n]["http"].append(http)
            print(f"round {round_number}, {n} process(es): raw {raw:.2f}/s, over HTTP "
                  f"{http:.2f}/s ({errors} non-200), ratio {http / raw:.1%}",
                  flush=True)  # fmt: skip
    for kind in ("raw", "http"):
        ratios = [two / one for one, two in zip(results[1][kind], results[2][kind], strict=True)]
        print(f"{kind}: 2 processes / 1 process, median {statistics.median(ratios):.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip


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
        "--postgres",
        metavar="ADMIN_URL",
        help="SQLite against PostgreSQL (a server URL such as "
        "postgresql://postgres@127.0.0.1:5432/postgres), interleaved rounds",
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
    raw = raw_argon2(args.seconds, args.workers, params)
    print(f"raw Argon2id ({DEFAULT_ARGON2.describe()}), {args.workers} processes: {raw:.2f}/s")
    http, errors = end_to_end(args.seconds, args.workers, args.clients)
    print(f"sign path over HTTP, {args.workers} workers, {args.clients} clients: {http:.2f}/s "
          f"({errors} non-200 answers)")  # fmt: skip
    print(f"ratio: {http / raw:.1%} of the raw Argon2id limit (target: at least 90%)")


if __name__ == "__main__":
    main()
