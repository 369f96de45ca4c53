"""``anonsign calibrate``: measure Argon2id on this host and propose the dedup-key cost.

Argon2id is the deliberate cost of every signature and the physical limit of the service
(DESIGN.md, performance targets). The cost set for new petitions
(``ANONSIGN_ARGON2_*``) decides how long a signer waits and how many signatures per
second the host can take at most -- the number a rate limit must be sized from -- and no
default can know the host. This command times candidates from RFC 9106 and OWASP here:
alone, and with every worker hashing at once in separate processes (as gunicorn's sync
workers run them), and recommends the costliest that meets the target time with all
workers busy and keeps every worker's Argon2id memory within the budget.

It never recommends less than OWASP's minimum (m=19 MiB, t=2, p=1, or one of the pairs
OWASP lists as equivalent). The pepper is the first protection of the dedup keys;
Argon2id is what is left against someone who holds a running server's pepper and
enumerates phone numbers (SECURITY.md): below the minimum that enumeration is cheap, so
when the target cannot be met above it, the command says so and recommends the fastest
candidate at the minimum rather than a weaker one.

Candidates whose memory for every worker at once exceeds the budget are not measured at
all: measuring them would be the out-of-memory failure the budget is there to prevent.
Time goes through :func:`anonsign.crypto.kdf.argon2id`, the project's one Argon2 module,
so what is measured is what signing runs. This module imports neither Flask nor
SQLAlchemy; the measuring processes import only it.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import click

from anonsign.crypto.kdf import Argon2Params, argon2id
from anonsign.errors import CalibrationError, KeyDerivationFailed
from anonsign.host import default_budget_mib, machine_memory_mib

MIB = 1024  # KiB

#: OWASP Password Storage Cheat Sheet, Argon2id: five configurations OWASP calls
#: equivalent in defence, trading memory for passes. m=19 MiB, t=2, p=1 is the one it
#: names first. A cost "at or above the minimum" has at least the memory and the passes
#: of one of them (lanes split the same memory and work, so they neither add nor remove).
OWASP_MINIMUMS = (
    Argon2Params(time_cost=1, memory_kib=46 * MIB, parallelism=1),
    Argon2Params(time_cost=2, memory_kib=19 * MIB, parallelism=1),
    Argon2Params(time_cost=3, memory_kib=12 * MIB, parallelism=1),
    Argon2Params(time_cost=4, memory_kib=9 * MIB, parallelism=1),
    Argon2Params(time_cost=5, memory_kib=7 * MIB, parallelism=1),
)

#: Measuring one candidate, alone and then under load, takes about this long each.
MEASURE_SECONDS = 0.6
#: ... and at most this many hashes per process, however fast they are.
MAX_ROUNDS = 20

DEFAULT_TARGET_MS = 150


@dataclass(frozen=True)
class Candidate:
    """A parameter set worth measuring, and who recommends it."""

    name: str
    source: str
    params: Argon2Params

    @property
    def cost(self) -> int:
        """Memory times passes (KiB): what an attacker pays per guess, whatever the lanes."""
        return self.params.memory_kib * self.params.time_cost


CANDIDATES = (
    # Argon2Params(time_cost, memory_kib, parallelism), costliest first.
    Candidate("RFC 9106 #1", "RFC 9106 §4, first recommendation", Argon2Params(1, 2048 * MIB, 4)),
    Candidate("1 GiB", "a step between RFC 9106's two", Argon2Params(1, 1024 * MIB, 4)),
    Candidate("256 MiB", "a step between RFC 9106's two", Argon2Params(2, 256 * MIB, 1)),
    Candidate("128 MiB", "a step between RFC 9106's two", Argon2Params(3, 128 * MIB, 1)),
    Candidate("RFC 9106 #2", "RFC 9106 §4, second recommendation", Argon2Params(3, 64 * MIB, 4)),
    Candidate("default", "anonsign's default: RFC 9106 #2, one lane", Argon2Params(3, 64 * MIB, 1)),
    Candidate("OWASP 46", "OWASP, equivalent to the minimum", OWASP_MINIMUMS[0]),
    Candidate("OWASP 19 (min)", "OWASP's minimum", OWASP_MINIMUMS[1]),
    Candidate("OWASP 12", "OWASP, equivalent to the minimum", OWASP_MINIMUMS[2]),
    Candidate("OWASP 9", "OWASP, equivalent to the minimum", OWASP_MINIMUMS[3]),
    Candidate("OWASP 7", "OWASP, equivalent to the minimum", OWASP_MINIMUMS[4]),
)


@dataclass(frozen=True)
class Measurement:
    """One candidate's times on this host; ``None`` where it was not measured."""

    candidate: Candidate
    #: Median milliseconds per hash with nothing else hashing.
    ms_alone: float | None
    #: Median milliseconds per hash while every worker hashes at once.
    ms_under_load: float | None
    #: Hashes per second, all workers together.
    per_second: float | None

    @property
    def measured(self) -> bool:
        return self.ms_under_load is not None and self.per_second is not None


@dataclass(frozen=True)
class Recommendation:
    measurement: Measurement
    #: False: no candidate at or above OWASP's minimum met the target; this is the fastest.
    target_met: bool


# --- the rules, as pure functions ----------------------------------------------------------


def meets_minimum(params: Argon2Params) -> bool:
    """At least the memory and passes of one of OWASP's equivalent configurations."""
    return any(
        params.memory_kib >= floor.memory_kib and params.time_cost >= floor.time_cost
        for floor in OWASP_MINIMUMS
    )


def peak_kib(params: Argon2Params, workers: int) -> int:
    """Argon2id memory when every worker hashes at once (each sync worker hashes one)."""
    return params.memory_kib * workers


def fits(params: Argon2Params, workers: int, budget_kib: int) -> bool:
    return peak_kib(params, workers) <= budget_kib


def check_budget(workers: int, budget_kib: int) -> None:
    """Refuse early when not even the smallest cost at the minimum fits the budget."""
    smallest = min(floor.memory_kib for floor in OWASP_MINIMUMS)
    if not fits(Argon2Params(1, smallest, 1), workers, budget_kib):
        raise CalibrationError(
            f"A memory budget of {budget_kib // MIB} MiB cannot hold {workers} concurrent "
            f"Argon2id hashes at OWASP's minimum ({workers} x {smallest // MIB} MiB); raise "
            "--memory-budget-mib or run fewer workers (--workers, ANONSIGN_WORKERS)."
        )


def recommend(
    measurements: Sequence[Measurement], *, target_ms: float, budget_kib: int, workers: int
) -> Recommendation:
    """The costliest measured candidate at or above the minimum, within the budget, that
    meets ``target_ms`` with every worker busy; else the fastest such candidate."""
    eligible = [
        m
        for m in measurements
        if m.measured
        and meets_minimum(m.candidate.params)
        and fits(m.candidate.params, workers, budget_kib)
    ]
    if not eligible:
        raise CalibrationError()
    meeting = [m for m in eligible if _under_load(m) <= target_ms]
    if meeting:
        best = max(
            meeting,
            key=lambda m: (m.candidate.cost, m.candidate.params.memory_kib, -_under_load(m)),
        )
        return Recommendation(best, target_met=True)
    return Recommendation(min(eligible, key=_under_load), target_met=False)


def _under_load(measurement: Measurement) -> float:
    return measurement.ms_under_load if measurement.ms_under_load is not None else math.inf


def environment_lines(params: Argon2Params) -> list[str]:
    return [
        f"ANONSIGN_ARGON2_TIME_COST={params.time_cost}",
        f"ANONSIGN_ARGON2_MEMORY_KIB={params.memory_kib}",
        f"ANONSIGN_ARGON2_PARALLELISM={params.parallelism}",
    ]


# --- this machine ----------------------------------------------------------------------------


# --- measuring -------------------------------------------------------------------------------


def time_hashes(params: Argon2Params, rounds: int) -> list[float]:
    """Seconds per hash for ``rounds`` hashes of random input (no warm-up: every hash
    allocates and touches its memory afresh, as every signature does)."""
    secret, salt = os.urandom(32), os.urandom(16)
    durations = []
    for _ in range(rounds):
        start = time.perf_counter()
        argon2id(secret, salt, params)
        durations.append(time.perf_counter() - start)
    return durations


def _start_worker(delay: float) -> None:
    # Holds a pool process for a moment, so that every process exists before the first
    # timed batch instead of starting during it.
    time.sleep(delay)


def measure(
    candidates: Sequence[Candidate],
    *,
    workers: int,
    budget_kib: int,
    progress: Callable[[str], None],
) -> list[Measurement]:
    """Time every candidate that fits the budget: alone here, then in ``workers`` processes."""
    results = []
    # spawn: a fresh interpreter per process, never a fork of a CLI that may hold threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        progress(f"starting {workers} measuring processes")
        list(pool.map(_start_worker, [0.2] * workers))
        for candidate in candidates:
            params = candidate.params
            if not fits(params, workers, budget_kib):
                progress(
                    f"skipping {candidate.name} ({params.describe()}): {workers} at once "
                    f"need {peak_kib(params, workers) // MIB} MiB, over the budget"
                )
                results.append(Measurement(candidate, None, None, None))
                continue
            try:
                progress(f"measuring {candidate.name} ({params.describe()}) alone")
                first = time_hashes(params, 1)
                rounds = max(1, min(MAX_ROUNDS, math.ceil(MEASURE_SECONDS / max(first[0], 1e-9))))
                alone = statistics.median(first + time_hashes(params, rounds - 1))
                progress(f"measuring {candidate.name} on {workers} processes at once")
                batches = list(pool.map(time_hashes, [params] * workers, [rounds] * workers))
            except (KeyDerivationFailed, BrokenProcessPool):
                # argon2 could not allocate, or the kernel killed a process that did.
                raise CalibrationError(
                    f"This machine ran out of memory measuring {candidate.name} "
                    f"({peak_kib(params, workers) // MIB} MiB with {workers} at once); "
                    "give a smaller --memory-budget-mib."
                ) from None
            per_second = sum(len(batch) / sum(batch) for batch in batches)
            under_load = statistics.median(d for batch in batches for d in batch)
            results.append(Measurement(candidate, alone * 1000, under_load * 1000, per_second))
    return results


# --- the command -----------------------------------------------------------------------------


def _report(
    measurements: Sequence[Measurement],
    recommendation: Recommendation,
    *,
    target_ms: int,
    budget_mib: int,
    workers: int,
) -> dict[str, Any]:
    chosen = recommendation.measurement
    per_second = chosen.per_second or 0.0
    return {
        "host": {
            "cores": os.cpu_count(),
            "memory_mib": machine_memory_mib(),
            "workers": workers,
            "memory_budget_mib": budget_mib,
        },
        "target_ms": target_ms,
        "candidates": [
            {
                "name": m.candidate.name,
                "source": m.candidate.source,
                "time_cost": m.candidate.params.time_cost,
                "memory_kib": m.candidate.params.memory_kib,
                "parallelism": m.candidate.params.parallelism,
                "measured": m.measured,
                "ms_alone": m.ms_alone,
                "ms_under_load": m.ms_under_load,
                "signatures_per_second": m.per_second,
                "peak_mib": peak_kib(m.candidate.params, workers) // MIB,
                "within_budget": fits(m.candidate.params, workers, budget_mib * MIB),
                "meets_owasp_minimum": meets_minimum(m.candidate.params),
                "meets_target": m.measured and _under_load(m) <= target_ms,
            }
            for m in measurements
        ],
        "recommendation": {
            "name": chosen.candidate.name,
            "target_met": recommendation.target_met,
            "ms_under_load": chosen.ms_under_load,
            "environment": environment_lines(chosen.candidate.params),
            "signatures_per_second": per_second,
            "signatures_per_minute": math.floor(per_second * 60),
            "signatures_per_hour": math.floor(per_second * 3600),
        },
    }


def _verdict(row: dict[str, Any], recommended: bool) -> str:
    if recommended:
        return "recommended"
    if not row["within_budget"]:
        return "over budget"
    if not row["meets_owasp_minimum"]:
        return "below minimum"
    return "meets target" if row["meets_target"] else "too slow"


def _print_table(report: dict[str, Any], recommendation: Recommendation) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    host = report["host"]
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"Argon2id here: {host['workers']} workers, "
        f"budget {host['memory_budget_mib']} MiB, target {report['target_ms']} ms",
        caption="ms: one hash alone. busy, sig/s: every worker hashing at once.\n"
        "peak: the memory of those hashes together (MiB).",
    )
    table.add_column("candidate", no_wrap=True)
    for name in ("t", "MiB", "p", "ms", "busy", "sig/s", "peak"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    chosen = recommendation.measurement.candidate.name
    for row in report["candidates"]:
        measured = row["measured"]
        table.add_row(
            row["name"],
            str(row["time_cost"]),
            str(row["memory_kib"] // MIB),
            str(row["parallelism"]),
            f"{row['ms_alone']:.0f}" if measured else "-",
            f"{row['ms_under_load']:.0f}" if measured else "-",
            f"{row['signatures_per_second']:.1f}" if measured else "-",
            str(row["peak_mib"]),
            _verdict(row, row["name"] == chosen),
        )
    Console().print(table)


@click.command()
@click.option(
    "--target-ms",
    type=click.IntRange(1, 60_000),
    default=DEFAULT_TARGET_MS,
    show_default=True,
    help="How long one signature's Argon2id may take while every worker is hashing.",
)
@click.option(
    "--memory-budget-mib",
    type=click.IntRange(min=1),
    help="Memory Argon2id may use with every worker hashing at once "
    "(default: ANONSIGN_MEMORY_BUDGET_MIB, else half of this machine's memory).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Hashes at once: the server's workers (default: ANONSIGN_WORKERS, else cores).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def calibrate(
    target_ms: int, memory_budget_mib: int | None, workers: int | None, as_json: bool
) -> None:
    """Measure Argon2id here and propose ANONSIGN_ARGON2_* for new petitions.

    Times candidates from RFC 9106 and OWASP with every worker hashing at once, and
    recommends the costliest that meets --target-ms within the memory budget; never
    less than OWASP's minimum. Run it on the server, while it is quiet. Takes seconds.
    """
    from anonsign.config import load_settings

    settings = load_settings()
    workers = workers or settings.workers
    budget_mib = memory_budget_mib or settings.memory_budget_mib or default_budget_mib()
    check_budget(workers, budget_mib * MIB)

    def progress(line: str) -> None:
        click.echo(f"{line} ...", err=True)

    measurements = measure(
        CANDIDATES, workers=workers, budget_kib=budget_mib * MIB, progress=progress
    )
    recommendation = recommend(
        measurements, target_ms=target_ms, budget_kib=budget_mib * MIB, workers=workers
    )
    report = _report(
        measurements, recommendation, target_ms=target_ms, budget_mib=budget_mib, workers=workers
    )
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_table(report, recommendation)
    chosen = report["recommendation"]
    if not recommendation.target_met:
        click.echo(
            f"\nNo cost at or above OWASP's minimum meets {target_ms} ms here with {workers} "
            f"workers hashing at once:\nthe fastest takes {chosen['ms_under_load']:.0f} ms. "
            "anonsign never recommends less than the minimum;\nraise --target-ms, or run "
            "the service on faster cores."
        )
    click.echo(
        f"\nRecommended: {chosen['name']} "
        f"({recommendation.measurement.candidate.params.describe()}). For new petitions, set:"
    )
    for line in chosen["environment"]:
        click.echo(f"  {line}")
    click.echo(
        f"\nAt this cost this host takes at most about {chosen['signatures_per_second']:.1f} "
        f"signatures per second,\n{chosen['signatures_per_minute']:,} per minute, "
        f"{chosen['signatures_per_hour']:,} per hour: size rate limits below these (every\n"
        "signature beyond them waits for a worker). Existing petitions keep their cost."
    )
