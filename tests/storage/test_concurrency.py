"""Concurrent signers: the database, not the code, makes one identifier one signature."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from anonsign.domain.petitions import Petition
from anonsign.service import Service

WORKERS = 16


def _signatures(service: Service) -> int:
    return next(s.signatures for s in service.summaries())


def test_same_identifier_at_once_is_one_signature(service: Service, petition: Petition) -> None:
    barrier = threading.Barrier(WORKERS)

    def submit(i: int) -> None:
        barrier.wait()
        service.sign(petition.slug, f"Same.Person+{i}@Example.org", "")

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(submit, range(WORKERS)))
    assert _signatures(service) == 1


def test_distinct_identifiers_at_once_are_all_kept(service: Service, petition: Petition) -> None:
    barrier = threading.Barrier(WORKERS)

    def submit(i: int) -> None:
        barrier.wait()
        service.sign(petition.slug, f"person{i}@example.org", f"contact {i}")

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(submit, range(WORKERS)))
    assert _signatures(service) == WORKERS
