"""What one signature costs besides its hash: the queries of a page load and a post.

Argon2id is meant to be nearly all of a signature's cost (bench/README.md,
``sign_throughput.py``); everything else is overhead the signer waits for and the
server's cores pay. These counts are exact, so they can be pinned where a time could
not: a change that reads the petition once more per request fails here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from flask.testing import FlaskClient
from sqlalchemy import event

from anonsign.domain.petitions import Petition
from anonsign.service import Service
from tests.conftest import form_fields


@contextmanager
def statements(service: Service) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(service.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(service.db.engine, "before_cursor_execute", record)


def petition_reads(seen: list[str]) -> int:
    """Whole-petition reads (the row with its title and text), each three queries."""
    return sum(1 for s in seen if s.startswith("SELECT petitions.id, petitions.slug"))


def test_a_page_load_and_a_post_read_the_petition_once_each(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    client.get(f"/p/{petition.slug}")  # a first request warms the process
    with statements(service) as page_queries:
        page = client.get(f"/p/{petition.slug}")
    assert page.status_code == 200
    fields = form_fields(page.get_data(as_text=True))
    data = fields | {"identifier": "once@example.org", "consent": "y"}
    with statements(service) as post_queries:
        answer = client.post(f"/p/{petition.slug}/sign", data=data)
    assert answer.status_code == 200
    # The page: the petition and its checkpoint. The post: the petition once for the
    # limiter, the view and the form check together; then only its state and pepper.
    assert petition_reads(page_queries) == 1, page_queries
    assert petition_reads(post_queries) == 1, post_queries
    # Once an hour per process the nonce claim also forgets expired nonces: not per post.
    queries = [
        q for q in page_queries + post_queries if not q.startswith("DELETE FROM used_form_nonces")
    ]
    kinds = Counter(q.split()[0] for q in queries)
    assert kinds["INSERT"] == 2  # the form's nonce, then the signature (never together)
    # 26 before the petition was kept for the request (five whole-petition reads).
    assert len(queries) <= 17, queries
