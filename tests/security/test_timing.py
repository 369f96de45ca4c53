"""No membership oracle by time: a repeat takes as long as a new signature.

Every submission does the same Argon2id work and the same write (one random-keyed
pending row; repeats are folded at publication), so a new identifier, a repeat of one
still pending and a repeat of one already published must answer in the same time.
Measured through the whole HTTP path at two costs: cheap Argon2id, where the database
is all there is to see, and the production default (64 MiB, t=3), where it is not. The
three kinds are interleaved in rotating order, round by round, and each new signature
is compared with the repeats made right beside it, so that load which comes and goes on
two busy cores hits all three alike; the paired medians must be within 5%. (Checked by
hand: the previous design, an upsert that rewrote a published signer's row, wrote fewer
pages for a repeat of a published signer; a naive ``ON CONFLICT DO NOTHING`` differed
by 5.9% at a moderate cost and failed here.)
"""

from __future__ import annotations

import statistics
import time

import pytest
from flask import Flask

from anonsign.config import DEFAULT_ARGON2
from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.service import Service
from tests.conftest import CHEAP_ARGON2, make_petition, page_fields

KINDS = ("new", "repeat of pending", "repeat of published")
COSTS = {
    "cheap": (CHEAP_ARGON2, 150),
    "default": (DEFAULT_ARGON2, 24),
}


@pytest.mark.slow
@pytest.mark.timing  # `make test` runs it alone, after the rest of the suite
@pytest.mark.parametrize("cost", list(COSTS))
def test_new_and_repeated_signatures_take_the_same_time(
    app: Flask, service: Service, organizer: OrganizerSecretKey, cost: str
) -> None:
    argon2, rounds = COSTS[cost]
    service.settings = service.settings.with_overrides(argon2=argon2)
    petition = make_petition(service, organizer, "timing")
    assert petition.argon2 == argon2
    client = app.test_client()

    def post(identifier: str) -> float:
        # Each post needs its own page (a form token is accepted once); loaded untimed.
        form = page_fields(client, "timing") | {"identifier": identifier, "consent": "y"}
        started = time.perf_counter()
        answer = client.post("/p/timing/sign", data=form)
        elapsed = time.perf_counter() - started
        assert answer.status_code == 200
        return elapsed

    post("published@example.org")
    assert service.publish("timing") is not None
    post("pending@example.org")
    post("warmup@example.org")
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for i in range(rounds):
        identifiers = {
            "new": f"new{i}@example.org",
            "repeat of pending": "pending@example.org",
            "repeat of published": "published@example.org",
        }
        shift = i % len(KINDS)
        for kind in KINDS[shift:] + KINDS[:shift]:
            times[kind].append(post(identifiers[kind]))
    medians = {kind: statistics.median(t) for kind, t in times.items()}
    overall = statistics.median(t for ts in times.values() for t in ts)
    report = ", ".join(f"{k} {m * 1000:.2f} ms" for k, m in medians.items())
    print(f"timing ({cost} Argon2id {argon2.describe()}): {report}")
    for repeat in KINDS[1:]:
        paired = statistics.median(n - r for n, r in zip(times["new"], times[repeat], strict=True))
        assert abs(paired) / overall < 0.05, (
            f"{report}; new vs {repeat}: paired median difference {paired * 1000:.2f} ms "
            f"({abs(paired) / overall:.1%} of {overall * 1000:.2f} ms)"
        )


def test_the_default_cost_is_what_production_uses() -> None:
    # The "default" case above measures what a real petition gets, not a stand-in.
    assert Argon2Params(time_cost=3, memory_kib=65536, parallelism=1) == DEFAULT_ARGON2
