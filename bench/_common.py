"""What several benchmarks share: work spread over processes, and clients driven in a
closed loop. Plain standard library, so each script stays one command."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any


def in_processes(target: Callable[..., None], args: tuple[Any, ...], processes: int) -> list[Any]:
    """Run ``target(*args, queue)`` in ``processes`` processes at once; what each put on
    its queue, in the order they finished."""
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=target, args=(*args, queue)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return results


def closed_loop_clients(
    clients: int, seconds: float, sign: Callable[[int, int], bool]
) -> tuple[float, int]:
    """``clients`` threads each calling ``sign(client, i)`` back to back for ``seconds``:
    successes per second, and the failures (``sign`` returned False)."""
    counts = [0] * clients
    errors = [0] * clients
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            if sign(n, i):
                counts[n] += 1
            else:
                errors[n] += 1
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started), sum(errors)


def one_against_two(
    rounds: int, measure: Callable[[int], tuple[float, float, int]], unit: str
) -> None:
    """Interleaved rounds of ``measure(1)`` and ``measure(2)`` (raw rate, rate over HTTP,
    non-200 answers), each round printed, then the median of two over one for each."""
    import statistics

    results: dict[int, dict[str, list[float]]] = {n: {"raw": [], "http": []} for n in (1, 2)}
    for round_number in range(1, rounds + 1):
        for n in (1, 2):
            raw, http, errors = measure(n)
            results[n]["raw"].append(raw)
            results[n]["http"].append(http)
            print(f"round {round_number}, {n} {unit}: raw {raw:.2f}/s, over HTTP "
                  f"{http:.2f}/s ({errors} non-200), ratio {http / raw:.1%}",
                  flush=True)  # fmt: skip
    for kind in ("raw", "http"):
        ratios = [two / one for one, two in zip(results[1][kind], results[2][kind], strict=True)]
        print(f"{kind}: two / one, median {statistics.median(ratios):.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip
