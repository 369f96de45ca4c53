"""Hashing slots and their short queue: sized from the memory budget, shed when full."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from anonsign.config import Settings, load_settings
from anonsign.errors import ConfigError
from anonsign.web.capacity import Capacity, HashingBusy, HashingGate, SharedGate, _HostLock


def settings_with(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"ANONSIGN_INSTANCE": str(tmp_path), **env})


@pytest.mark.parametrize(
    ("env", "cores", "expected"),
    [
        # Two cores, plenty of memory: two hashes at once, eight waiting behind.
        ({"ANONSIGN_WORKERS": "2", "ANONSIGN_MEMORY_BUDGET_MIB": "4096"}, 2, Capacity(2, 8)),
        # The slots follow the cores, not the processes.
        ({"ANONSIGN_WORKERS": "2", "ANONSIGN_MEMORY_BUDGET_MIB": "4096"}, 8, Capacity(8, 32)),
        # Memory is the tighter bound: 256 MiB holds four 64 MiB hashes.
        ({"ANONSIGN_WORKERS": "1", "ANONSIGN_MEMORY_BUDGET_MIB": "256"}, 16, Capacity(4, 16)),
        ({"ANONSIGN_WORKERS": "1", "ANONSIGN_HASHING_QUEUE": "0"}, 1, Capacity(1, 0)),
    ],
)
def test_slots_follow_cores_and_memory(
    tmp_path: Path, env: dict[str, str], cores: int, expected: Capacity
) -> None:
    assert Capacity.for_settings(settings_with(tmp_path, **env), cores=cores) == expected


def test_a_budget_below_one_hash_is_refused_with_what_to_change(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, ANONSIGN_MEMORY_BUDGET_MIB="40")
    with pytest.raises(ConfigError) as refused:
        Capacity.for_settings(settings, cores=4)
    assert "ANONSIGN_MEMORY_BUDGET_MIB" in refused.value.message
    assert "64 MiB" in refused.value.message


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


def _hold_a_slot(gate: SharedGate, held: Any, release: Any) -> None:
    with gate.turn():
        held.set()
        release.wait(20)


@contextmanager
def slot_held_elsewhere(gate: SharedGate) -> Iterator[tuple[Any, Any]]:
    """A forked process (a worker) holding one of ``gate``'s slots until released."""
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    child = context.Process(target=_hold_a_slot, args=(gate, held, release))
    child.start()
    try:
        assert held.wait(20)
        yield child, release
    finally:
        # Not for a child killed while it waited: a multiprocessing Event's set() waits
        # for every sleeper to wake, the dead one too (the very trap _HostLock avoids).
        if child.is_alive():
            release.set()
        child.join(20)


def test_the_shared_gate_counts_the_slots_of_every_process() -> None:
    # Workers forked from the master share its slots: one held in a child is taken here.
    gate = SharedGate(Capacity(slots=1, queue=0))
    with slot_held_elsewhere(gate):
        assert gate.in_use == (1, 0)
        with pytest.raises(HashingBusy), gate.turn():
            pass
    with gate.turn():
        assert gate.in_use == (1, 0)


def test_a_process_killed_mid_hash_gives_its_slot_back() -> None:
    gate = SharedGate(Capacity(slots=1, queue=1))
    with slot_held_elsewhere(gate) as (child, _release):
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(20)
    # Its slot still names it, but as free; the next post finds it dead and takes it.
    assert gate.in_use == (0, 0)
    with gate.turn():
        assert gate.in_use == (1, 0)
    assert gate.in_use == (0, 0)


def test_a_post_waits_in_the_shared_queue_for_another_process_s_slot() -> None:
    gate = SharedGate(Capacity(slots=1, queue=1))
    with slot_held_elsewhere(gate) as (_child, release):
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        with gate.turn():
            waited = time.monotonic() - started
    assert waited >= 0.2  # it waited for the slot instead of being shed


def wait_until_one_is_queued(gate: SharedGate) -> None:
    """Until the one slot is held and one post waits behind it (another process's)."""
    for _ in range(500):
        if gate.in_use == (1, 1):
            return
        time.sleep(0.01)
    assert gate.in_use == (1, 1)


def _hold_the_lock(lock: _HostLock, held: Any) -> None:
    with lock.held():
        held.set()
        time.sleep(60)


def test_a_process_killed_holding_the_gate_s_lock_does_not_stop_the_others() -> None:
    # A worker killed inside the gate's few lines (a timeout's SIGKILL, the OOM killer):
    # the kernel frees its lock, where a multiprocessing lock would stay held for ever.
    lock = _HostLock()
    context = multiprocessing.get_context("fork")
    held = context.Event()
    child = context.Process(target=_hold_the_lock, args=(lock, held))
    child.start()
    assert held.wait(20)
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join(20)
    took = threading.Event()

    def take() -> None:
        with lock.held():
            took.set()

    threading.Thread(target=take, daemon=True).start()
    assert took.wait(5), "the dead process's lock was never released"


def _queue_then_report(gate: SharedGate, done: Any) -> None:
    with gate.turn():
        pass
    done.set()


def test_a_process_killed_while_queued_does_not_stop_the_others() -> None:
    # A waiter killed in the queue must neither keep its place nor hang the slot holder
    # when it gives the slot back (a condition's notify waits for its dead sleeper).
    gate = SharedGate(Capacity(slots=1, queue=1))
    context = multiprocessing.get_context("fork")
    with slot_held_elsewhere(gate) as (holder, release):
        waiter = context.Process(target=_queue_then_report, args=(gate, context.Event()))
        waiter.start()
        wait_until_one_is_queued(gate)
        os.kill(waiter.pid or 0, signal.SIGKILL)
        waiter.join(20)
        release.set()
        holder.join(20)
        assert holder.exitcode == 0, "the slot holder hung giving its slot back"
    # The dead waiter's queue place is taken back by the next post that needs one.
    done = context.Event()
    with gate.turn():
        queued = context.Process(target=_queue_then_report, args=(gate, done))
        queued.start()
        wait_until_one_is_queued(gate)
    assert done.wait(20)
    queued.join(20)
    assert gate.in_use == (0, 0)


def _hold_one_then_take_the_other(first: _HostLock, second: _HostLock, held: Any, go: Any) -> None:
    """A threaded worker: one thread holds ``first`` a while, another waits for ``second``."""
    errors: list[BaseException] = []

    def hold() -> None:
        with first.held():
            held.set()
            time.sleep(1.0)

    def take() -> None:
        go.wait(20)
        try:
            with second.held():
                pass
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hold), threading.Thread(target=take)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    os._exit(1 if errors else 0)


def test_two_threaded_workers_each_holding_a_lock_wait_and_do_not_fail() -> None:
    # Worker A holds the gate's lock in one thread and waits for a stats lock in another;
    # worker B the other way round. No thread waits for itself, so both must just wait:
    # a POSIX record lock fails one of them with EDEADLK (a 500, seen in the flood test).
    gate_lock, stats_lock = _HostLock(), _HostLock()
    context = multiprocessing.get_context("fork")
    go = context.Event()
    held = [context.Event(), context.Event()]
    workers = [
        context.Process(target=_hold_one_then_take_the_other, args=(a, b, h, go))
        for (a, b), h in zip(((gate_lock, stats_lock), (stats_lock, gate_lock)), held, strict=True)
    ]
    for worker in workers:
        worker.start()
    assert all(h.wait(20) for h in held)
    go.set()
    for worker in workers:
        worker.join(30)
    assert [w.exitcode for w in workers] == [0, 0]


def _queue_and_say_when(gate: SharedGate, took: Any) -> None:
    with gate.turn():
        took.set()


def test_a_queued_post_is_woken_by_the_release_not_by_its_own_recheck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Unrung, a queued post in another process would look again only after a minute; the
    # slot given back here rings it awake at once.
    monkeypatch.setattr("anonsign.web.capacity.RECHECK_SECONDS", 60.0)
    gate = SharedGate(Capacity(slots=1, queue=1))
    context = multiprocessing.get_context("fork")
    took = context.Event()
    with gate.turn():
        waiter = context.Process(target=_queue_and_say_when, args=(gate, took))
        waiter.start()
        wait_until_one_is_queued(gate)
    try:
        assert took.wait(20), "the queued post slept through the release"
    finally:
        waiter.join(20)
    assert gate.in_use == (0, 0)


def test_a_release_with_nobody_queued_leaves_no_wake_up_behind() -> None:
    # Only a release with posts queued rings: an idle host's pipe stays empty, so the first
    # post to queue later sleeps until a real release, not through a backlog of bytes.
    gate = SharedGate(Capacity(slots=1, queue=1))
    for _ in range(100):
        with gate.turn():
            pass
    with pytest.raises(BlockingIOError):
        os.read(gate._wakeup._read, 1)
