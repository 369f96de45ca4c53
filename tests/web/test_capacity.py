"""Hashing slots and their short queue: sized from the memory budget, shed when full."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from anonsign.config import Settings, load_settings
from anonsign.errors import ConfigError
from anonsign.web.capacity import Capacity, HashingBusy, HashingGate


def settings_with(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"ANONSIGN_INSTANCE": str(tmp_path), **env})


@pytest.mark.parametrize(
    ("env", "cores", "expected"),
    [
        # Two cores, two workers, plenty of memory: one hash each, four waiting behind.
        ({"ANONSIGN_WORKERS": "2", "ANONSIGN_MEMORY_BUDGET_MIB": "4096"}, 2, Capacity(1, 4)),
        # More cores than workers: the slots follow the cores, not the processes.
        ({"ANONSIGN_WORKERS": "2", "ANONSIGN_MEMORY_BUDGET_MIB": "4096"}, 8, Capacity(4, 16)),
        # Memory is the tighter bound: 256 MiB holds four 64 MiB hashes in all.
        ({"ANONSIGN_WORKERS": "1", "ANONSIGN_MEMORY_BUDGET_MIB": "256"}, 16, Capacity(4, 16)),
        ({"ANONSIGN_WORKERS": "1", "ANONSIGN_HASHING_QUEUE": "0"}, 1, Capacity(1, 0)),
    ],
)
def test_slots_follow_cores_and_memory(
    tmp_path: Path, env: dict[str, str], cores: int, expected: Capacity
) -> None:
    assert Capacity.for_settings(settings_with(tmp_path, **env), cores=cores) == expected


def test_a_budget_below_one_hash_per_worker_is_refused_with_what_to_change(
    tmp_path: Path,
) -> None:
    settings = settings_with(tmp_path, ANONSIGN_WORKERS="4", ANONSIGN_MEMORY_BUDGET_MIB="200")
    with pytest.raises(ConfigError) as refused:
        Capacity.for_settings(settings, cores=4)
    assert "ANONSIGN_MEMORY_BUDGET_MIB" in refused.value.message
    assert "4 x 64 MiB" in refused.value.message


def test_the_gate_admits_its_slots_queues_a_few_and_sheds_the_rest() -> None:
    gate = HashingGate(Capacity(slots=1, queue=1))
    holding, release = threading.Event(), threading.Event()
    order: list[str] = []

    def hash_for_a_while(name: str) -> None:
        with gate.turn():
            order.append(name)
            holding.set()
            release.wait(10)

    first = threading.Thread(target=hash_for_a_while, args=("first",))
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=hash_for_a_while, args=("second",))
    second.start()
    for _ in range(200):
        if gate.in_use == (1, 1):
            break
        threading.Event().wait(0.01)
    assert gate.in_use == (1, 1)
    # The slot and the one queue place are taken: refused now, not after a wait.
    with pytest.raises(HashingBusy), gate.turn():
        pass
    release.set()
    first.join(10)
    second.join(10)
    assert order == ["first", "second"]
    assert gate.in_use == (0, 0)


def test_a_failing_hash_gives_its_slot_back() -> None:
    gate = HashingGate(Capacity(slots=1, queue=0))
    with pytest.raises(RuntimeError), gate.turn():
        raise RuntimeError("the store was down")
    with gate.turn():
        assert gate.in_use == (1, 0)
