"""No membership oracle by time: a repeated signature takes as long as a new one.

Both do the same Argon2id work and the same kind of write (an upsert that rewrites the
row, so both commit and sync). Measured through the whole HTTP path with a realistic
Argon2id cost (so the database is small beside it, as in production), new and repeated
submissions interleaved in pairs so that machine noise hits both alike. The medians
must be within 5% of each other. (Checked by hand: with a naive ``ON CONFLICT DO
NOTHING`` insert, which skips the write and the sync for a repeat, on a quiet machine
the medians were 26.8 ms and 25.3 ms, 5.9% apart, and this test failed.)
"""

from __future__ import annotations

import statistics
import time

import pytest
from flask import Flask

from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.service import Service
from tests.conftest import csrf_token, make_petition

ROUNDS = 60
#: Cheaper than production (64 MiB, t=3) to keep the suite quick, costly enough to dominate.
TIMING_ARGON2 = Argon2Params(time_cost=2, memory_kib=16384, parallelism=1)


@pytest.mark.slow
@pytest.mark.xdist_group("cpu-quiet")  # never beside the browser test
def test_repeated_and_new_signatures_take_the_same_time(
    app: Flask, service: Service, organizer: OrganizerSecretKey
) -> None:
    service.settings = service.settings.with_overrides(argon2=TIMING_ARGON2)
    petition = make_petition(service, organizer, "timing")
    assert petition.argon2 == TIMING_ARGON2
    client = app.test_client()
    token = csrf_token(client.get("/p/timing").get_data(as_text=True))

    def post(identifier: str) -> float:
        started = time.perf_counter()
        answer = client.post(
            "/p/timing/sign",
            data={"csrf_token": token, "identifier": identifier, "consent": "y"},
        )
        elapsed = time.perf_counter() - started
        assert answer.status_code == 200
        return elapsed

    post("repeat@example.org")  # the identifier that will be repeated
    post("warmup@example.org")
    new, repeated = [], []
    for i in range(ROUNDS):
        pair = [("new", f"new{i}@example.org"), ("repeat", "repeat@example.org")]
        if i % 2:
            pair.reverse()
        for kind, identifier in pair:
            (new if kind == "new" else repeated).append(post(identifier))
    median_new, median_repeat = statistics.median(new), statistics.median(repeated)
    # The test suite runs on two busy cores: compare each new signature with the repeat
    # made right beside it, so that load which comes and goes hits both sides alike.
    paired = statistics.median(n - r for n, r in zip(new, repeated, strict=True))
    difference = abs(paired) / statistics.median(new + repeated)
    print(f"timing: new {median_new * 1000:.2f} ms, repeated {median_repeat * 1000:.2f} ms")
    assert difference < 0.05, (
        f"median new {median_new * 1000:.2f} ms vs repeated {median_repeat * 1000:.2f} ms; "
        f"paired median difference {paired * 1000:.2f} ms ({difference:.1%})"
    )
