"""Repeated log entries found by sorting runs, in bounded memory (anonsign.audit.repeats)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsign.audit.repeats import RepeatFinder, Repeats


def _find(entries: list[bytes], run_entries: int, tmp_dir: Path | None = None) -> Repeats:
    with RepeatFinder(run_entries, str(tmp_dir) if tmp_dir else None) as finder:
        for entry in entries:
            finder.add(entry)
        return finder.result()


def _by_set(entries: list[bytes]) -> Repeats:
    """The obvious way, with a set, to compare against."""
    seen: dict[bytes, int] = {}
    repeated, first = 0, None
    for position, entry in enumerate(entries):
        if entry in seen:
            repeated += 1
            if first is None:
                first = (seen[entry], position, entry)
        else:
            seen[entry] = position
    return Repeats(entries=len(entries), repeated=repeated, first=first)


def test_unique_entries_have_no_repeat() -> None:
    entries = [os.urandom(32) for _ in range(1000)]
    found = _find(entries, run_entries=64)
    assert found == Repeats(entries=1000, repeated=0, first=None)
    assert found.distinct == 1000


def test_a_repeat_across_runs_is_found_with_both_positions() -> None:
    entries = [os.urandom(32) for _ in range(1000)]
    entries[901] = entries[3]  # in another run of 64 than its original
    assert _find(entries, run_entries=64) == Repeats(1000, 1, (3, 901, entries[3]))


def test_the_first_repeat_is_the_lowest_placed_one_not_the_smallest_value() -> None:
    entries = [bytes([200 - n]) * 32 for n in range(100)]
    entries[50] = entries[40]  # the first repeat in log order
    entries[70] = entries[10]  # a smaller position first seen, but repeated later
    entries[90] = entries[40]  # a third copy
    found = _find(entries, run_entries=8)
    assert found == Repeats(100, 3, (40, 50, entries[40]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([bytes([n]) * 32 for n in range(12)]), max_size=80),
    st.integers(min_value=1, max_value=20),
)
def test_sorting_finds_what_a_set_finds(entries: list[bytes], run_entries: int) -> None:
    assert _find(entries, run_entries) == _by_set(entries)


def test_the_runs_leave_no_file_behind(tmp_path: Path) -> None:
    entries = [os.urandom(32) for _ in range(500)]
    _find(entries, run_entries=50, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_memory_stays_bounded_by_the_run_not_the_log() -> None:
    # 400,000 entries in runs of 20,000: a set of them would hold about 40 MB; the finder
    # holds one run (about 2 MB) and the merge's read buffers.
    tracemalloc.start()
    try:
        with RepeatFinder(run_entries=20_000) as finder:
            for _ in range(20):
                block = os.urandom(32 * 20_000)
                for offset in range(0, len(block), 32):
                    finder.add(block[offset : offset + 32])
            found = finder.result()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found.entries == 400_000
    assert found.repeated == 0
    assert peak < 12 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
