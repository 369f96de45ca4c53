"""Benchmark: what anonsign's privacy costs, against a plain form that stores emails in clear.

The same sign workload (a page load, then a post of a distinct identifier) against two
servers on the same cores: ``bench/plain_form_app.py`` (Flask + SQLAlchemy on SQLite,
the email and its time stored in clear, nothing else) and a real ``anonsign serve``
(Argon2id dedup key, HPKE-sealed contact, form token, CSRF, rate limits, SQLCipher),
both under gunicorn's threaded worker with ``--workers`` processes, each driven by
``--clients`` threads with the same urllib client. In each round a slice of raw Argon2id
(the sign path's hash alone, in ``--workers`` processes) runs first, then the plain form,
then anonsign, so the three are read within one round of a drifting machine.

    .venv/bin/python bench/privacy_cost.py [--seconds 12] [--rounds 3] [--workers 2]

Printed per round: signatures per second of each, and the cores' time per signature
(workers ÷ rate), which splits anonsign's cost into the hash and everything else.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import closed_loop_clients  # noqa: E402
from sign_throughput import end_to_end, raw_argon2  # noqa: E402
from tests.live import free_port, stop_group, wait_for_port  # noqa: E402


def plain_form(seconds: float, workers: int, clients: int) -> tuple[float, int]:
    """Signatures per second through the plain form, and the non-200 answers."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    with tempfile.TemporaryDirectory(prefix="anonsign-bench-plain-") as tmp:
        port = free_port()
        env = {**os.environ, "PLAIN_FORM_DB": str(Path(tmp) / "plain.db")}
        threads = str(4 + workers)
        with (Path(tmp) / "server.log").open("wb") as log:
            server = subprocess.Popen(  # noqa: S603 - gunicorn from this venv
                [gunicorn, "--workers", str(workers), "--worker-class", "gthread",
                 "--threads", threads, "--bind", f"127.0.0.1:{port}",
                 "--chdir", str(ROOT / "bench"), "plain_form_app:app"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                wait_for_port(port, server)
                return _drive(f"http://127.0.0.1:{port}", seconds, clients)
            finally:
                stop_group(server)


def _drive(base: str, seconds: float, clients: int) -> tuple[float, int]:
    def sign(n: int, i: int) -> bool:
        with urllib.request.urlopen(base + "/", timeout=30) as answer:  # noqa: S310
            answer.read()
        form = urllib.parse.urlencode({"email": f"signer{n}-{i}@example.org"}).encode()
        try:
            with urllib.request.urlopen(base + "/sign", data=form, timeout=30) as answer:  # noqa: S310
                answer.read()
                return bool(answer.status == 200)
        except urllib.error.HTTPError:
            return False

    return closed_loop_clients(clients, seconds, sign)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    from anonsign.config import DEFAULT_ARGON2 as P

    params = (P.time_cost, P.memory_kib, P.parallelism)
    ratios, hash_shares = [], []
    for number in range(1, args.rounds + 1):
        raw = raw_argon2(args.seconds, args.workers, params)
        plain, plain_errors = plain_form(args.seconds, args.workers, args.clients)
        anonsign, errors = end_to_end(args.seconds, args.workers, args.clients)
        per_sig = {name: 1000 * args.workers / rate for name, rate in
                   (("raw", raw), ("plain", plain), ("anonsign", anonsign))}  # fmt: skip
        ratios.append(plain / anonsign)
        hash_shares.append(per_sig["raw"] / per_sig["anonsign"])
        print(f"round {number}: plain form {plain:.1f}/s ({plain_errors} non-200), "
              f"anonsign {anonsign:.2f}/s ({errors} non-200), raw Argon2id {raw:.2f}/s; "
              f"core-ms per signature: plain {per_sig['plain']:.1f}, anonsign "
              f"{per_sig['anonsign']:.0f} of which the hash {per_sig['raw']:.0f}",
              flush=True)  # fmt: skip
    print(f"the plain form signs {statistics.median(ratios):.0f}x as fast (median; rounds "
          f"{', '.join(f'{r:.0f}x' for r in ratios)}); Argon2id is "
          f"{statistics.median(hash_shares):.0%} of anonsign's cost per signature "
          f"(rounds {', '.join(f'{s:.0%}' for s in hash_shares)})")  # fmt: skip


if __name__ == "__main__":
    main()
