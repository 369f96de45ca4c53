"""Benchmark: a real server offered 1x, 2x and 10x what it can hash, and what a refusal costs.

The limit is raw Argon2id: ``--workers`` processes deriving dedup keys back to back at
the default cost (64 MiB, t=3, p=1). The real thing is ``anonsign serve`` on a unix
socket, reached as tor reaches it (a PROXY line per connection, every arrival on a
circuit of its own, so the per-circuit limit is not what is measured; the global and
per-petition caps are at their defaults), offered sign posts *open loop*: arrivals at a
fixed rate of 1, 2 and 10 times the raw rate just measured, each a page load and a post,
whether or not earlier ones were answered. Reported per level: accepted signatures per
second (and as a share of the raw limit), what the other answers were (429 limited, 503
shed), latency of accepted posts, and the peak memory of the server's processes.

Slices are interleaved (raw, 1x, raw, 2x, raw, 10x, and again per round), and each level
is set from the raw slice just before it, so a machine whose load drifts hits both alike.
The load generator runs on the same cores as the server: at 10x it takes a visible share
of them, which is part of what an overloaded host looks like, and is said in the report.

The cost of a refusal: the server's CPU time (``/proc``, all its processes) per request
for batches of accepted signatures, of posts refused by the per-circuit limit (429), and
of posts refused as replayed forms (400), interleaved, with workers that are never
recycled during the run (so no process's CPU time is lost).

    .venv/bin/python bench/overload.py [--seconds 15] [--rounds 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sign_throughput import raw_argon2  # noqa: E402
from tests.live import (  # noqa: E402
    ANONSIGN,
    Circuit,
    circuit_address,
    group_pids,
    rss_kib,
    serving_on_socket,
)

LEVELS = (1, 2, 10)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pids: list[int]) -> float:
    return rss_kib(pids) / 1024


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


class Arrivals:
    """Open-loop sign posts at a fixed rate, each on a circuit of its own."""

    def __init__(self, sock: Path, slug: str) -> None:
        self.sock = sock
        self.slug = slug
        self.next_circuit = 0x01000000
        self.lock = threading.Lock()

    def _circuit(self) -> Circuit:
        with self.lock:
            self.next_circuit += 1
            return Circuit(self.sock, circuit_address(self.next_circuit))

    def one(self, n: int) -> tuple[int, float]:
        started = time.perf_counter()
        circuit = self._circuit()
        try:
            fields = circuit.form_token(self.slug)
            if fields is None:
                return -1, time.perf_counter() - started
            status = circuit.post_sign(self.slug, fields, f"+993 65 {n % 1000000:06d}")[0]
        except OSError:
            return -2, time.perf_counter() - started
        return status, time.perf_counter() - started

    def run(self, rate: float, seconds: float, server_pgid: int) -> dict[str, object]:
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        peak = 0.0
        count = int(rate * seconds)
        futures = []
        with ThreadPoolExecutor(max_workers=400) as pool:
            start = time.perf_counter()
            for n in range(count):
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(self.one, n + int(start * 1000) % 10**6))
                if n % max(1, int(rate / 4)) == 0:
                    peak = max(peak, rss_mib(group_pids(server_pgid)))
            offered = time.perf_counter() - start
            for future in futures:
                status, latency = future.result()
                statuses[status] += 1
                if status == 200:
                    latencies.append(latency)
                peak = max(peak, rss_mib(group_pids(server_pgid)))
            elapsed = time.perf_counter() - start
        return {
            "statuses": dict(statuses),
            "accepted_per_s": statuses[200] / elapsed,
            "offered_per_s": count / offered,
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p95": statistics.quantiles(latencies, n=20)[-1]
            if len(latencies) > 1
            else float("nan"),
            "peak_rss_mib": peak,
        }


def refusal_costs(sock: Path, slug: str, pgid: int, rounds: int) -> dict[str, list[float]]:
    """Server CPU ms per request: accepted, limited (429), replayed form (400)."""
    costs: dict[str, list[float]] = {"accepted": [], "limited (429)": [], "replayed (400)": []}
    for r in range(rounds):
        # Accepted: each on a fresh circuit, one after the other.
        arrivals = Arrivals(sock, slug)
        arrivals.next_circuit = 0x02000000 + r * 0x10000
        before = cpu_seconds(group_pids(pgid))
        results = [arrivals.one(900000 + r * 1000 + i)[0] for i in range(30)]
        costs["accepted"].append(
            (cpu_seconds(group_pids(pgid)) - before) * 1000 / max(1, results.count(200))
        )
        # Limited: one circuit over its quota; the page load is not part of the cost.
        greedy = Circuit(sock, circuit_address(0x03000000 + r))
        forms = [greedy.form_token(slug) for _ in range(60)]
        before = cpu_seconds(group_pids(pgid))
        answers = [
            greedy.post_sign(slug, f or {}, f"+993 65 {r}{i:05d}")[0] for i, f in enumerate(forms)
        ]
        spent = cpu_seconds(group_pids(pgid)) - before
        limited = answers.count(429)
        # The first posts of each worker's quota were accepted; subtract their cost.
        accepted_cost = costs["accepted"][-1] / 1000 * answers.count(200)
        costs["limited (429)"].append(max(0.0, spent - accepted_cost) * 1000 / max(1, limited))
        # Replayed: the same used form posted again from fresh circuits (no quota used).
        replayer = Circuit(sock, circuit_address(0x04000000 + r))
        fields = replayer.form_token(slug) or {}
        replayer.post_sign(slug, fields, f"+993 64 {r}00000")
        before = cpu_seconds(group_pids(pgid))
        replays = []
        for i in range(60):
            again = Circuit(sock, circuit_address(0x05000000 + r * 0x1000 + i))
            again.cookies = dict(replayer.cookies)
            replays.append(again.post_sign(slug, fields, f"+993 64 {r}{i:05d}")[0])
        costs["replayed (400)"].append(
            (cpu_seconds(group_pids(pgid)) - before) * 1000 / max(1, replays.count(400))
        )
        print(
            f"  cost round {r + 1}: accepted {costs['accepted'][-1]:.1f} ms, limited "
            f"{costs['limited (429)'][-1]:.2f} ms ({limited} of 60), replayed "
            f"{costs['replayed (400)'][-1]:.2f} ms ({replays.count(400)} of 60)",
            flush=True,
        )
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per slice")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    from anonsign.config import DEFAULT_ARGON2

    params = (DEFAULT_ARGON2.time_cost, DEFAULT_ARGON2.memory_kib, DEFAULT_ARGON2.parallelism)
    with tempfile.TemporaryDirectory(prefix="anonsign-", dir="/tmp") as tmp:
        env = {
            "ANONSIGN_INSTANCE": str(Path(tmp) / "instance"),
            "ANONSIGN_WORKERS": str(args.workers),
            "ANONSIGN_PUBLISHER_PERIOD": "0",
            "ANONSIGN_FORM_MIN_SECONDS": "0",
            # Never recycled during the run: the CPU time of every process stays countable.
            "ANONSIGN_WORKER_MAX_REQUESTS": "1000000",
            "ANONSIGN_WORKER_MAX_AGE": "0",
            # Page loads are part of every arrival; their own limit is not what is measured.
            "ANONSIGN_RATELIMIT_PAGES": "1000000/minute",
        }
        for name in ("GLOBAL", "PETITION", "CIRCUIT"):
            os.environ.pop(f"ANONSIGN_RATELIMIT_{name}", None)  # the defaults
        subprocess.run(  # noqa: S603 - our own command
            [ANONSIGN, "demo", "--no-serve"], env={**os.environ, **env}, check=True,
            capture_output=True,
        )  # fmt: skip
        sock = Path(tmp) / "app.sock"
        results: dict[int, list[dict[str, object]]] = {level: [] for level in LEVELS}
        with serving_on_socket(env, sock, Path(tmp) / "server.log") as server:
            arrivals = Arrivals(sock, "demo")
            arrivals.one(0)  # warm up both workers' app
            for round_number in range(1, args.rounds + 1):
                for level in LEVELS:
                    raw = raw_argon2(min(args.seconds, 5.0), args.workers, params)
                    time.sleep(1)
                    result = arrivals.run(raw * level, args.seconds, server.pid)
                    result["raw_per_s"] = raw
                    results[level].append(result)
                    accepted = float(result["accepted_per_s"])  # type: ignore[arg-type]
                    print(
                        f"round {round_number}, {level}x: raw {raw:.2f}/s, offered "
                        f"{result['offered_per_s']:.1f}/s, accepted {accepted:.2f}/s "
                        f"({accepted / raw:.0%} of raw), answers {result['statuses']}, "
                        f"p50 {result['p50']:.2f} s, p95 {result['p95']:.2f} s, "
                        f"peak RSS {result['peak_rss_mib']:.0f} MiB",
                        flush=True,
                    )
                    time.sleep(3)  # let queues drain before the next slice
            print("cost of a request, server CPU time:")
            costs = refusal_costs(sock, "demo", server.pid, args.rounds + 1)
        print("\nsummary (medians over rounds)")
        for level in LEVELS:
            rows = results[level]
            share = statistics.median(r["accepted_per_s"] / r["raw_per_s"] for r in rows)  # type: ignore[operator]
            peak = max(r["peak_rss_mib"] for r in rows)  # type: ignore[type-var]
            p95 = statistics.median(r["p95"] for r in rows)  # type: ignore[misc]
            print(f"  {level:>2}x capacity: accepted {share:.0%} of raw, p95 {p95:.2f} s, "
                  f"peak server RSS {peak:.0f} MiB")  # fmt: skip
        accepted = statistics.median(costs["accepted"])
        for name, values in costs.items():
            median = statistics.median(values)
            print(f"  {name}: {median:.2f} ms of server CPU ({median / accepted:.1%} of accepted)")


if __name__ == "__main__":
    main()
