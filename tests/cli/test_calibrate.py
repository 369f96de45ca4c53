"""``anonsign calibrate``: the recommendation rules as pure functions, and the command.

The command's tests replace the measuring with fixed numbers, so they check the rules and
the output in milliseconds; one slow test measures for real, on tiny costs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest
from click.testing import CliRunner, Result

from anonsign.cli import calibrate as cal
from anonsign.cli.calibrate import (
    CANDIDATES,
    MIB,
    OWASP_MINIMUMS,
    Candidate,
    Measurement,
    check_budget,
    environment_lines,
    fits,
    meets_minimum,
    peak_kib,
    recommend,
)
from anonsign.cli.main import main
from anonsign.crypto.kdf import Argon2Params
from anonsign.errors import CalibrationError

OWASP_MIN = Argon2Params(time_cost=2, memory_kib=19 * MIB, parallelism=1)


def candidate(name: str, t: int, mib: int, p: int = 1) -> Candidate:
    return Candidate(name, "test", Argon2Params(t, mib * MIB, p))


def measured(c: Candidate, ms: float) -> Measurement:
    return Measurement(c, ms_alone=ms, ms_under_load=ms, per_second=2000 / ms)


# --- the minimum -----------------------------------------------------------------------------


@pytest.mark.parametrize("floor", OWASP_MINIMUMS)
def test_every_owasp_configuration_meets_the_minimum(floor: Argon2Params) -> None:
    assert meets_minimum(floor)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (OWASP_MIN, True),
        (Argon2Params(2, 19 * MIB, 4), True),  # lanes split the same work
        (Argon2Params(1, 64 * MIB, 1), True),  # beyond OWASP's 46 MiB, t=1
        (Argon2Params(1, 2048 * MIB, 4), True),
        (Argon2Params(1, 19 * MIB, 1), False),  # one pass short
        (Argon2Params(2, 18 * MIB, 1), False),  # a MiB short
        (Argon2Params(4, 8 * MIB, 1), False),  # between 7 MiB t=5 and 9 MiB t=4
        (Argon2Params(1, 45 * MIB, 1), False),
        (Argon2Params(1, 64, 1), False),  # the test suite's cheap cost
    ],
)
def test_meets_minimum(params: Argon2Params, expected: bool) -> None:
    assert meets_minimum(params) is expected


def test_every_candidate_offered_meets_the_minimum() -> None:
    assert all(meets_minimum(c.params) for c in CANDIDATES)
    assert OWASP_MIN in {c.params for c in CANDIDATES}


# --- memory ------------------------------------------------------------------------------------


def test_peak_memory_is_one_hash_per_worker() -> None:
    assert peak_kib(Argon2Params(3, 64 * MIB, 4), workers=3) == 192 * MIB
    assert fits(Argon2Params(3, 64 * MIB, 1), workers=2, budget_kib=128 * MIB)
    assert not fits(Argon2Params(3, 64 * MIB, 1), workers=3, budget_kib=128 * MIB)


def test_a_budget_too_small_for_the_minimum_is_refused_before_measuring() -> None:
    check_budget(workers=2, budget_kib=14 * MIB)  # two OWASP 7 MiB hashes fit
    with pytest.raises(CalibrationError, match="cannot hold 3 concurrent"):
        check_budget(workers=3, budget_kib=20 * MIB)


# --- the recommendation ------------------------------------------------------------------------

BIG = candidate("big", 3, 256)
DEFAULT = candidate("default", 3, 64)
P4 = candidate("four lanes", 3, 64, 4)
MINIMUM = candidate("minimum", 2, 19)
SEVEN = candidate("seven", 5, 7)
WEAK = candidate("weak", 1, 4)


def test_recommends_the_costliest_that_meets_the_target() -> None:
    measurements = [measured(BIG, 400), measured(DEFAULT, 120), measured(MINIMUM, 20)]
    chosen = recommend(measurements, target_ms=150, budget_kib=4096 * MIB, workers=2)
    assert chosen.measurement.candidate == DEFAULT
    assert chosen.target_met


def test_of_equal_cost_the_faster_wins() -> None:
    measurements = [measured(P4, 140), measured(DEFAULT, 100)]
    chosen = recommend(measurements, target_ms=150, budget_kib=4096 * MIB, workers=2)
    assert chosen.measurement.candidate == DEFAULT


def test_respects_the_memory_budget() -> None:
    # The big one meets the target, but two workers need 512 MiB.
    measurements = [measured(BIG, 100), measured(DEFAULT, 90), measured(MINIMUM, 20)]
    chosen = recommend(measurements, target_ms=150, budget_kib=300 * MIB, workers=2)
    assert chosen.measurement.candidate == DEFAULT
    assert not fits(BIG.params, 2, 300 * MIB)


def test_never_below_the_minimum_even_when_only_that_meets_the_target() -> None:
    measurements = [measured(WEAK, 1), measured(MINIMUM, 40), measured(SEVEN, 30)]
    chosen = recommend(measurements, target_ms=10, budget_kib=4096 * MIB, workers=2)
    assert chosen.measurement.candidate == SEVEN  # the fastest at the minimum
    assert not chosen.target_met
    assert meets_minimum(chosen.measurement.candidate.params)


def test_unmeasured_candidates_are_never_chosen() -> None:
    skipped = Measurement(BIG, None, None, None)
    chosen = recommend(
        [skipped, measured(MINIMUM, 20)], target_ms=150, budget_kib=4096 * MIB, workers=2
    )
    assert chosen.measurement.candidate == MINIMUM


def test_nothing_eligible_is_an_error() -> None:
    with pytest.raises(CalibrationError, match="OWASP's minimum"):
        recommend([measured(WEAK, 1)], target_ms=150, budget_kib=4096 * MIB, workers=2)


def test_environment_lines_are_the_settings_config_reads() -> None:
    assert environment_lines(Argon2Params(3, 65536, 4)) == [
        "ANONSIGN_ARGON2_TIME_COST=3",
        "ANONSIGN_ARGON2_MEMORY_KIB=65536",
        "ANONSIGN_ARGON2_PARALLELISM=4",
    ]


# --- the command, with fixed numbers ------------------------------------------------------------

#: What a small two-core host might measure, per candidate name: milliseconds per hash.
FAKE_MS = {"big": 600.0, "default": 140.0, "minimum": 25.0, "seven": 20.0}
FAKE_CANDIDATES = (BIG, DEFAULT, MINIMUM, SEVEN)


def fake_measure(
    candidates: Sequence[Candidate],
    *,
    workers: int,
    budget_kib: int,
    progress: Callable[[str], None],
) -> list[Measurement]:
    results = []
    for c in candidates:
        if not fits(c.params, workers, budget_kib):
            results.append(Measurement(c, None, None, None))
            continue
        progress(f"measuring {c.name}")
        ms = FAKE_MS[c.name]
        results.append(Measurement(c, ms * 0.9, ms, workers * 1000 / ms))
    return results


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setattr(cal, "CANDIDATES", FAKE_CANDIDATES)
    monkeypatch.setattr(cal, "measure", fake_measure)
    monkeypatch.delenv("ANONSIGN_MEMORY_BUDGET_MIB", raising=False)
    monkeypatch.setenv("ANONSIGN_WORKERS", "2")

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(main, ["calibrate", *args], env=env)

    return invoke


def test_prints_the_table_the_lines_to_set_and_the_limits(run: Callable[..., Result]) -> None:
    result = run("--memory-budget-mib", "1024")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("big", "default", "minimum", "seven"):
        assert name in out
    assert "recommended" in out
    assert "too slow" in out
    assert "meets target" in out
    assert "ANONSIGN_ARGON2_TIME_COST=3\n" in out
    assert "ANONSIGN_ARGON2_MEMORY_KIB=65536\n" in out
    assert "ANONSIGN_ARGON2_PARALLELISM=1\n" in out
    # 2 workers at 140 ms: 14.3 per second.
    assert "14.3 signatures per second" in out
    assert "857 per minute" in out
    assert "51,428 per hour" in out
    # Progress goes to stderr, so stdout stays the report.
    assert "measuring default" in result.stderr
    assert "measuring" not in out


def test_json_is_the_whole_report(run: Callable[..., Result]) -> None:
    result = run("--memory-budget-mib", "1024", "--json", "--target-ms", "100")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["target_ms"] == 100
    assert report["host"]["workers"] == 2
    assert report["host"]["memory_budget_mib"] == 1024
    names = [row["name"] for row in report["candidates"]]
    assert names == ["big", "default", "minimum", "seven"]
    chosen = report["recommendation"]
    assert chosen["name"] == "minimum"  # default's 140 ms misses 100 ms
    assert chosen["target_met"] is True
    assert chosen["environment"] == environment_lines(MINIMUM.params)
    assert chosen["signatures_per_minute"] == 60 * 2000 // 25


def test_over_budget_candidates_are_skipped_and_marked(run: Callable[..., Result]) -> None:
    result = run("--memory-budget-mib", "200", "--json")
    report = json.loads(result.stdout)
    big = report["candidates"][0]
    assert big["measured"] is False
    assert big["within_budget"] is False
    assert big["peak_mib"] == 512
    assert report["recommendation"]["name"] == "default"


def test_the_budget_comes_from_the_environment(run: Callable[..., Result]) -> None:
    result = run("--json", env={"ANONSIGN_MEMORY_BUDGET_MIB": "200"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["host"]["memory_budget_mib"] == 200


def test_says_so_when_the_target_cannot_be_met_above_the_minimum(
    run: Callable[..., Result],
) -> None:
    result = run("--memory-budget-mib", "1024", "--target-ms", "5")
    assert result.exit_code == 0, result.output
    assert "No cost at or above OWASP's minimum meets 5 ms" in result.stdout
    assert "ANONSIGN_ARGON2_MEMORY_KIB=7168" in result.stdout  # "seven", the fastest


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--memory-budget-mib", "10"], None, "ERROR: A memory budget of 10 MiB cannot hold 2"),
        (
            [],
            {"ANONSIGN_MEMORY_BUDGET_MIB": "lots"},
            "ERROR: ANONSIGN_MEMORY_BUDGET_MIB must be a whole number",
        ),
        ([], {"ANONSIGN_MEMORY_BUDGET_MIB": "0"}, "ERROR: ANONSIGN_MEMORY_BUDGET_MIB must be at"),
    ],
)
def test_bad_input_is_one_error_line(
    run: Callable[..., Result], args: list[str], env: dict[str, str] | None, message: str
) -> None:
    result = run(*args, env=env)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message), result.stderr


@pytest.mark.parametrize("args", [["--target-ms", "0"], ["--workers", "0"], ["--target-ms", "x"]])
def test_out_of_range_options_are_usage_errors(run: Callable[..., Result], args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --- measuring for real ---------------------------------------------------------------


@pytest.mark.slow
# It saturates every core on purpose: never beside the timing test (tests/security).
@pytest.mark.xdist_group("cpu-quiet")
def test_measures_for_real_and_never_recommends_the_weak_fast_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tiny costs so it takes a second: one below the minimum (and so the fastest), one at it.
    monkeypatch.setattr(cal, "CANDIDATES", (WEAK, SEVEN))
    monkeypatch.setattr(cal, "MAX_ROUNDS", 2)
    result = CliRunner().invoke(
        main, ["calibrate", "--workers", "2", "--memory-budget-mib", "64", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["candidates"]}
    for row in rows.values():
        assert row["measured"]
        assert row["ms_alone"] > 0
        assert row["ms_under_load"] > 0
        assert row["signatures_per_second"] > 0
    assert rows["weak"]["meets_owasp_minimum"] is False
    assert report["recommendation"]["name"] == "seven"
    assert "measuring seven on 2 processes at once" in result.stderr
