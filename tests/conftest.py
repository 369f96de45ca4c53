"""Shared fixtures: a fresh instance per test, on SQLite and (when available) PostgreSQL.

Argon2id is made cheap here and only here: the dedup key's cost is a per-petition
parameter taken from settings, and the key-file KDF is lowered by ``cheap_keyfile_kdf``
(tests that need the real cost mark themselves ``real_kdf``).

Every test that uses ``database_url`` runs twice: on SQLite, and on PostgreSQL when
``ANONSIGN_TEST_DATABASE_URL`` names a server (``.ci/run`` sets it); without one, the
PostgreSQL variant is skipped with that reason. Tests of the limiter's Redis storage
read ``ANONSIGN_TEST_REDIS_URL`` the same way (fixture ``redis_url``).
"""

from __future__ import annotations

import logging
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.test import TestResponse

from anonsign.app import create_app
from anonsign.config import Settings, load_settings
from anonsign.crypto import keyfile, lock
from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import Petition, Recipient
from anonsign.instance import init_instance
from anonsign.service import Service
from tests.witnesses import MakeWitness

CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_kib=64, parallelism=1)
#: The suite signs hundreds of times from one address within a minute, in process and
#: through real servers (which inherit the environment): rate limits out of the way,
#: except in the tests of the limits themselves (tests/web/test_limits*.py), which set
#: their own or remove these to get the defaults.
SUITE_RATE_LIMITS = {
    "ANONSIGN_RATELIMIT_GLOBAL": "1000000/minute",
    "ANONSIGN_RATELIMIT_PETITION": "1000000/minute",
    "ANONSIGN_RATELIMIT_CIRCUIT": "1000000/minute",
    "ANONSIGN_RATELIMIT_PAGES": "1000000/minute",
}
#: No operator stats unless a test asks for them (tests/web/test_stats.py): every app the
#: suite makes would otherwise count into a directory on tmpfs.
SUITE_STATS = {"ANONSIGN_STATS_STORAGE_URI": "off"}
CHEAP_KEYFILE_KDF = Argon2Params(time_cost=1, memory_kib=8192, parallelism=1)
PG_ENV = "ANONSIGN_TEST_DATABASE_URL"
REDIS_ENV = "ANONSIGN_TEST_REDIS_URL"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_kdf: keep the real key-file Argon2id cost instead of the cheap one"
    )
    for name, value in (SUITE_RATE_LIMITS | SUITE_STATS).items():
        os.environ.setdefault(name, value)
    LOG_CAPTURE.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(LOG_CAPTURE)
    root.setLevel(logging.DEBUG)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run a worker whose xdist groups would not hold.

    ``xdist_group`` keeps the tests that share one Redis database, or need a quiet core,
    on one worker, one at a time. Under ``--dist loadgroup`` xdist says so by suffixing
    each grouped item's id with ``@group``; a pytest that ignores the suffix (9.2 with
    xdist 3.8, pytest-xdist#1386) spreads them over the workers, and they fail at random.
    """
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    # After the parameters' "]", as xdist reads it: an id like [a@b.org] is no suffix.
    lost = [
        i.nodeid
        for i in items
        if i.get_closest_marker("xdist_group") and "@" not in i.nodeid.rsplit("]", 1)[-1]
    ]
    if lost:
        raise pytest.UsageError(
            f"xdist_group is not grouping ({lost[0]} has no @group suffix): this pytest and "
            "pytest-xdist do not work together (pytest-xdist#1386); install pytest<9.2"
        )


# --- the whole-suite log scan ---------------------------------------------------------------
#
# Every request made through the `client` fixture carries a spoofed client address and
# agent; every identifier and contact posted through `sign` is remembered. When the session
# ends, everything any logger emitted during the whole suite is searched for them
# (SECURITY.md, "nothing in logs"). Under xdist each worker writes what it found, and the
# controlling process fails the run if any worker found a leak.

SPOOFED_ADDRESS = "198.51.100.203"
SPOOFED_FORWARDED = "203.0.113.144"
SPOOFED_AGENT = "SpoofedAgent/3.1 (qqzv-suite)"
SUBMITTED: set[str] = set()
LEAKS_DIR_ENV = "ANONSIGN_TEST_LEAKS_DIR"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record that cannot format is still scanned raw
            text = f"{record.msg!r} {record.args!r}"
        self.lines.append(text)


LOG_CAPTURE = _Capture()


def _leaks() -> list[str]:
    # A submitted value counts when it could not be an ordinary word of a log line
    # ("contact", "closed"): at least 6 characters, not all lowercase letters.
    needles = {SPOOFED_ADDRESS, SPOOFED_FORWARDED, SPOOFED_AGENT} | {
        s for s in SUBMITTED if len(s) >= 6 and not (s.isalpha() and s.islower())
    }
    text = "\n".join(LOG_CAPTURE.lines)
    return sorted(n for n in needles if n in text)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        os.environ[LEAKS_DIR_ENV] = tempfile.mkdtemp(prefix="anonsign-leaks-")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    folder = Path(os.environ.get(LEAKS_DIR_ENV, tempfile.gettempdir()))
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    leaks = _leaks()
    if leaks:
        (folder / f"{worker}.leaks").write_text("\n".join(leaks))
    if hasattr(session.config, "workerinput"):
        return
    found = [p.read_text() for p in folder.glob("*.leaks")]
    shutil.rmtree(folder, ignore_errors=True)
    if found and session.testscollected:
        sys.stderr.write(f"\nLOG LEAK: the suite's logs contain signer data: {found}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.testscollected:
        sys.stderr.write(
            f"\nlog scan: {len(LOG_CAPTURE.lines)} log records in this process, "
            "no address, agent, identifier or contact\n"
        )


@pytest.fixture(autouse=True)
def cheap_keyfile_kdf(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_kdf") is None:
        monkeypatch.setattr(keyfile, "KEYFILE_KDF", CHEAP_KEYFILE_KDF)
        monkeypatch.setattr(keyfile, "MIN_KEYFILE_KDF", CHEAP_KEYFILE_KDF)
        monkeypatch.setattr(lock, "LOCK_KDF", CHEAP_KEYFILE_KDF)
        monkeypatch.setattr(lock, "MIN_LOCK_KDF", CHEAP_KEYFILE_KDF)


# --- databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test against")
    return url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The Redis database named by ANONSIGN_TEST_REDIS_URL (db 15 in CI), empty at the
    start and at the end; tests that use it share one xdist group, never two at once."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set: no Redis server to test against")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def _pg_url(admin_url: str, database: str) -> str:
    url = make_url(admin_url).set(database=database)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"anonsign_test_{secrets.token_hex(6)}"
    admin = create_engine(_pg_url(postgres_admin_url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield _pg_url(postgres_admin_url, name)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'instance' / 'anonsign.db'}"


# --- an instance, its service and its web app -------------------------------------------


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def settings(instance_path: Path, database_url: str) -> Settings:
    return load_settings(
        {
            "ANONSIGN_INSTANCE": str(instance_path),
            "ANONSIGN_DATABASE_URL": database_url,
            **SUITE_RATE_LIMITS,
            **SUITE_STATS,
        },
        argon2=CHEAP_ARGON2,
        site_name="anonsign test",
        publisher_period=0.0,
        # `sign` posts the moment it has the page; the real two-second minimum has its
        # own tests (tests/web/test_form_token.py) and the browser test waits it out.
        form_min_seconds=0,
    )


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    init_instance(settings, dev=True)
    svc = Service.open(settings, migrate=True)
    yield svc
    svc.close_connections()


@pytest.fixture(scope="session")
def organizer() -> OrganizerSecretKey:
    return OrganizerSecretKey.generate()


def make_petition(
    service: Service,
    organizer: OrganizerSecretKey,
    slug: str,
    kind: IdentifierKind = IdentifierKind.EMAIL,
    **options: Any,
) -> Petition:
    """An open petition named ``slug`` whose contacts are sealed to ``organizer``."""
    return service.create_petition(
        slug=slug,
        title=options.pop("title", slug.replace("-", " ").capitalize()),
        text=options.pop("text", f"The {slug} petition."),
        identifier_kind=kind,
        recipients=[Recipient("alice", organizer.public_key())],
        **options,
    )


def add_pending(service: Service, petition_id: str, keys: list[bytes], contacts: int = 0) -> None:
    """Pending signatures with these dedup keys (no Argon2 work: the log is what is
    tested), and ``contacts`` pending sealed contacts, as if that many had signed."""
    from sqlalchemy import insert

    from anonsign.storage.models import PendingContactRow, PendingSignatureRow

    draws = random.Random(len(keys))  # noqa: S311 - test data
    with service.db.writing() as session:
        if keys:
            session.execute(
                insert(PendingSignatureRow.__table__),
                [
                    {"petition_id": petition_id, "id": draws.randbytes(16), "dedup_key": k}
                    for k in keys
                ],
            )
        if contacts:
            session.execute(
                insert(PendingContactRow.__table__),
                [
                    {"petition_id": petition_id, "id": draws.randbytes(16), "sealed": b"c"}
                    for _ in range(contacts)
                ],
            )


@pytest.fixture
def petition(service: Service, organizer: OrganizerSecretKey) -> Petition:
    """An open email petition."""
    return service.create_petition(
        slug="free-press",
        title="Free the press",
        text="We ask for the release of **every** jailed journalist.",
        identifier_kind=IdentifierKind.EMAIL,
        recipients=[Recipient("alice", organizer.public_key())],
    )


@pytest.fixture
def phone_petition(service: Service, organizer: OrganizerSecretKey) -> Petition:
    return service.create_petition(
        slug="tm-phones",
        title="Turkmen phones",
        text="Signed with a phone number.",
        identifier_kind=IdentifierKind.PHONE,
        phone_region="TM",
        recipients=[Recipient("alice", organizer.public_key())],
    )


@pytest.fixture
def app(settings: Settings, service: Service) -> Flask:
    flask_app = create_app(settings, service=service)
    flask_app.config["TESTING"] = True
    return flask_app


def spoofed_client(app: Flask) -> FlaskClient:
    """A new test client (its own cookies) whose requests all carry a spoofed address,
    forwarded headers and agent, which the suite's log scan then looks for."""
    test_client = app.test_client()
    test_client.environ_base.update(
        {
            "REMOTE_ADDR": SPOOFED_ADDRESS,
            "HTTP_X_FORWARDED_FOR": SPOOFED_FORWARDED,
            "HTTP_X_REAL_IP": SPOOFED_FORWARDED,
            "HTTP_USER_AGENT": SPOOFED_AGENT,
        }
    )
    return test_client


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client whose requests all carry a spoofed address, forwarded header and agent."""
    return spoofed_client(app)


# --- signing through the form, as a browser does --------------------------------------------

CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
FORM_TOKEN_INPUT = re.compile(r'name="form_token" value="([^"]+)"')
#: The honeypot field, which a browser posts empty (web.form_guard).
HONEYPOT = "website"


def csrf_token(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def form_token(html: str) -> str:
    match = FORM_TOKEN_INPUT.search(html)
    assert match, "the page has no form token"
    return match.group(1)


def form_fields(html: str) -> dict[str, str]:
    """What a browser posts besides the signer's input: both tokens and the empty honeypot."""
    return {"csrf_token": csrf_token(html), "form_token": form_token(html), HONEYPOT: ""}


def page_fields(client: FlaskClient, slug: str) -> dict[str, str]:
    """Load the petition page, as a browser does before each post, and take its fields."""
    page = client.get(f"/p/{slug}")
    assert page.status_code == 200, page.status_code
    return form_fields(page.get_data(as_text=True))


def sign(
    client: FlaskClient,
    slug: str,
    identifier: str,
    contact: str = "",
    *,
    consent: bool = True,
    **kwargs: object,
) -> TestResponse:
    """Open the petition page and post its form, the way a browser without JS does."""
    SUBMITTED.update({identifier, contact} - {""})
    form = page_fields(client, slug) | {"identifier": identifier}
    if contact:
        form["contact"] = contact
    if consent:
        form["consent"] = "y"
    return client.post(f"/p/{slug}/sign", data=form, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def make_witness(tmp_path: Path) -> Iterator[MakeWitness]:
    """Start a witness named ``name``, served over HTTP until the test ends (tests/witnesses.py)."""
    from anonsign.crypto.cosign import WitnessSigner
    from anonsign.witness.service import Witness
    from anonsign.witness.state import WitnessState
    from tests.witnesses import RunningWitness, serving

    with ExitStack() as stack:

        def start(name: str) -> RunningWitness:
            state = WitnessState(tmp_path / f"{name.replace('/', '_')}.db")
            witness = Witness(WitnessSigner.generate(name), state)
            return RunningWitness(witness, stack.enter_context(serving(witness)))

        yield start
