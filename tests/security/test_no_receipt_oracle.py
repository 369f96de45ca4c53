"""No receipt, so no membership oracle (SECURITY.md, "why there are no receipts").

The adversary is the state: it holds every citizen's phone number and can submit the form
itself. If the answer to a signature carried anything derived from the identifier (the
dedup key, the log entry, any encoding of them), one POST with a suspect's identifier and
one GET of ``/p/<slug>/log/inclusion`` would tell it whether the suspect had signed. These
tests play that adversary through the test client: a signer signs A, the log is published,
then the adversary submits A again and a never-seen B, and looks for anything in what it
got back, or in any public answer, that the inclusion endpoint would accept.

Each runs on a petition made today and on one whose organizer had turned receipts on
before migration 0004 (the flag set in a database at 0003, then upgraded): on a version
that still shows receipts, the second fails.
"""

from __future__ import annotations

import base64
import re

import pytest
from alembic import command
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, text
from werkzeug.test import TestResponse

from anonsign.cli import main
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from anonsign.storage.migrate import alembic_config, upgrade
from tests.conftest import make_petition, sign, spoofed_client

SIGNER = "suspect@example.org"  # A: signed by the suspect, then submitted by the adversary
NEVER_SEEN = "someone-else@example.org"  # B: submitted by the adversary only

CSRF_INPUT = re.compile(rb'name="csrf_token" type="hidden" value="[^"]+"')
#: 32 bytes take 43 characters in base64 or base64url, 64 in hex (all in this alphabet).
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_=-]{43,}")


@pytest.fixture(params=["made-today", "had-receipts"])
def target(
    request: pytest.FixtureRequest, service: Service, organizer: OrganizerSecretKey
) -> Petition:
    """The petition under attack; "had-receipts" had receipts on before migration 0004."""
    made = make_petition(service, organizer, "target")
    if request.param == "had-receipts":
        engine = service.db.engine
        command.downgrade(alembic_config(engine), "0003")  # a no-op where 0003 is the head
        with engine.begin() as conn:
            conn.execute(text("UPDATE petitions SET receipts = TRUE"))
        upgrade(engine)
    return made


@pytest.fixture
def adversary(app: Flask) -> FlaskClient:
    """A second browser, with its own session, carrying the suite's spoofed headers."""
    return spoofed_client(app)


def encodings(value: bytes) -> list[bytes]:
    """Every spelling of ``value`` a page could carry: raw, base64 (both alphabets), hex."""
    standard = base64.b64encode(value)
    urlsafe = base64.urlsafe_b64encode(value)
    return [
        value,
        standard,
        standard.rstrip(b"="),
        urlsafe,
        urlsafe.rstrip(b"="),
        value.hex().encode(),
        value.hex().upper().encode(),
    ]


def published_entries(service: Service, slug: str) -> list[bytes]:
    return service.leaves(slug, 0, service.checkpoint(slug).size)


def everything_in(answer: TestResponse) -> bytes:
    """What the adversary holds from one answer: its headers (cookies included) and body."""
    headers = b"\n".join(f"{k}: {v}".encode() for k, v in answer.headers.items())
    return headers + b"\n\n" + answer.data


def comparable_headers(answer: TestResponse) -> list[tuple[str, str]]:
    return [(k, v) for k, v in answer.headers.items() if k != "Date"]


def leaf_tokens(data: bytes) -> set[str]:
    """Every 43-character window of every base64-looking run, as base64url: what an
    adversary would try as ``leaf=``."""
    tokens = set()
    for run in BASE64_RUN.findall(data):
        url = run.replace(b"+", b"-").replace(b"/", b"_").decode()
        tokens.update(url[i : i + 43] for i in range(len(url) - 42))
    return tokens


def submit_as_adversary(adversary: FlaskClient, slug: str) -> tuple[TestResponse, TestResponse]:
    repeat = sign(adversary, slug, SIGNER)
    new = sign(adversary, slug, NEVER_SEEN)
    assert repeat.status_code == new.status_code == 200
    return repeat, new


def test_the_answer_to_a_signer_and_to_a_stranger_carries_no_entry(
    client: FlaskClient, adversary: FlaskClient, service: Service, target: Petition
) -> None:
    assert sign(client, target.slug, SIGNER).status_code == 200
    service.publish(target.slug)
    repeat, new = submit_as_adversary(adversary, target.slug)

    for answer in (repeat, new):
        assert not CSRF_INPUT.search(answer.data), "the thank-you page carries no CSRF token"
        assert BASE64_RUN.findall(answer.data) == [], "a 32-byte value in base64 or hex"
    assert comparable_headers(repeat) == comparable_headers(new)
    assert repeat.data == new.data

    service.publish(target.slug)
    entries = published_entries(service, target.slug)
    assert len(entries) == 2  # A once, B once
    for answer in (repeat, new):
        held = everything_in(answer)
        for entry in entries:
            for spelling in encodings(entry):
                assert spelling not in held, "a dedup key in the answer to a signature"


def test_no_public_answer_lets_the_adversary_ask_about_an_identifier(
    client: FlaskClient, adversary: FlaskClient, service: Service, target: Petition
) -> None:
    slug = target.slug
    assert sign(client, slug, SIGNER).status_code == 200
    service.publish(slug)
    repeat, new = submit_as_adversary(adversary, slug)
    service.publish(slug)
    size = service.checkpoint(slug).size
    entries = published_entries(service, slug)

    def get(path: str) -> TestResponse:
        answer = adversary.get(path)
        assert answer.status_code == 200, path
        return answer

    leaves = get(f"/p/{slug}/log/leaves?start=0&end={size}")
    answers = {
        "thanks-repeat": repeat,
        "thanks-new": new,
        "checkpoint": get(f"/p/{slug}/checkpoint"),
        "consistency": get(f"/p/{slug}/log/consistency?from=1&to={size}"),
        "petition": get(f"/p/{slug}"),
        "index": get("/"),
        "key": get("/.well-known/anonsign/key"),
    }
    for entry in entries:
        leaf = base64.urlsafe_b64encode(entry).decode().rstrip("=")
        answers[f"inclusion-{leaf}"] = get(f"/p/{slug}/log/inclusion?leaf={leaf}&size={size}")

    # The leaves are every entry, for everyone: the auditor's view, which says of no entry
    # whose it is. Nothing else hands out an entry; no other answer repeats one.
    assert sorted(base64.b64decode(e) for e in leaves.json["leaves"]) == sorted(entries)  # type: ignore[index]
    tried: set[str] = set()
    for name, answer in answers.items():
        held = everything_in(answer)
        for token in leaf_tokens(held) - tried:
            asked = adversary.get(f"/p/{slug}/log/inclusion?leaf={token}&size={size}")
            assert asked.status_code == 400, f"{name} hands out {token}, which the log proves"
            tried.add(token)
        for entry in entries:
            assert not any(s in held for s in encodings(entry)), name
    assert tried, "the answers hold base64 (the checkpoint's root at least): the check ran"


def test_there_is_no_way_to_turn_receipts_on(
    service: Service, organizer: OrganizerSecretKey
) -> None:
    with pytest.raises(TypeError):
        make_petition(service, organizer, "wants-receipts", receipts=True)
    assert "receipts" not in {
        c["name"] for c in inspect(service.db.engine).get_columns("petitions")
    }
    result = CliRunner().invoke(
        main, ["petition", "create", "x", "--title", "X", "--text-file", "t", "--identifier",
               "email", "--recipient", "a.pub", "--receipts"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "No such option '--receipts'" in result.output
