"""Benchmark: Argon2id with libargon2's own malloc against anonsign's kept working memory.

argon2-cffi's ``hash_secret_raw`` lets libargon2 allocate its memory for every hash,
which for 64 MiB means a fresh mapping, 16,384 page faults and as many zeroed pages;
``anonsign.crypto.kdf.argon2id`` lends it memory mapped once, in transparent huge pages
where the kernel offers them, and kept for the next hash (the module's docstring). Both
compute the same output (tests/unit/crypto/test_crypto_kdf.py); this measures what the
difference costs on this machine's cores, with the default sign-path parameters.

    .venv/bin/python bench/argon2_memory.py [--seconds 8] [--rounds 3] [--processes 2]

Each round runs a slice of each, ``--processes`` processes hashing back to back, library
first then anonsign's, so that a machine whose load drifts hits both alike; per round it
prints hashes per second, CPU per hash (user and system) and the ratio, then the medians.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _common import in_processes  # noqa: E402


def _hash_for(kind: str, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from argon2.low_level import Type, hash_secret_raw

    from anonsign.config import DEFAULT_ARGON2 as P
    from anonsign.crypto.kdf import argon2id

    salt = os.urandom(16)
    count, before = 0, os.times()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        secret = count.to_bytes(32, "big")
        if kind == "library":
            hash_secret_raw(secret=secret, salt=salt, time_cost=P.time_cost,
                            memory_cost=P.memory_kib, parallelism=P.parallelism, hash_len=32,
                            type=Type.ID, version=19)  # fmt: skip
        else:
            argon2id(secret, salt, P, 32)
        count += 1
    after = os.times()
    out.put((count, after.user - before.user, after.system - before.system))


def slice_of(kind: str, seconds: float, processes: int) -> tuple[float, float, float]:
    """Hashes per second, and user and system CPU milliseconds per hash."""
    results = in_processes(_hash_for, (kind, seconds), processes)
    count = sum(r[0] for r in results)
    user = sum(r[1] for r in results)
    system = sum(r[2] for r in results)
    return count / seconds, 1000 * user / count, 1000 * system / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    print(f"transparent huge pages: {thp.read_text().strip() if thp.exists() else 'absent'}")
    ratios = []
    for number in range(1, args.rounds + 1):
        rates = {}
        for kind in ("library", "anonsign"):
            rate, user, system = slice_of(kind, args.seconds, args.processes)
            rates[kind] = rate
            print(f"round {number}, {kind:8}: {rate:6.2f} hashes/s, per hash "
                  f"{user:5.1f} ms user + {system:4.1f} ms system", flush=True)  # fmt: skip
        ratios.append(rates["anonsign"] / rates["library"])
        print(f"round {number}: kept working memory / library allocation {ratios[-1]:.2f}")
    print(f"median {statistics.median(ratios):.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip


if __name__ == "__main__":
    main()
