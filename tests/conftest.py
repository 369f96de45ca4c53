"""Shared fixtures: a fresh instance per test, on SQLite and (when available) PostgreSQL.

Argon2id is made cheap here and only here: the dedup key's cost is a per-petition
parameter taken from settings, and the key-file KDF is lowered by ``cheap_keyfile_kdf``
(tests that need the real cost mark themselves ``real_kdf``).

Every test that uses ``database_url`` runs twice: on SQLite, and on PostgreSQL when
``ANONSIGN_TEST_DATABASE_URL`` names a server (``.ci/run`` sets it); without one, the
PostgreSQL variant is skipped with that reason.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.test import TestResponse

from anonsign.app import create_app
from anonsign.config import Settings, load_settings
from anonsign.crypto import keyfile
from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import Petition, Recipient
from anonsign.instance import init_instance
from anonsign.service import Service

CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_kib=64, parallelism=1)
CHEAP_KEYFILE_KDF = Argon2Params(time_cost=1, memory_kib=8192, parallelism=1)
PG_ENV = "ANONSIGN_TEST_DATABASE_URL"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_kdf: keep the real key-file Argon2id cost instead of the cheap one"
    )


@pytest.fixture(autouse=True)
def cheap_keyfile_kdf(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_kdf") is None:
        monkeypatch.setattr(keyfile, "KEYFILE_KDF", CHEAP_KEYFILE_KDF)
        monkeypatch.setattr(keyfile, "MIN_KEYFILE_KDF", CHEAP_KEYFILE_KDF)


# --- databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test against")
    return url


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
        {"ANONSIGN_INSTANCE": str(instance_path), "ANONSIGN_DATABASE_URL": database_url},
        argon2=CHEAP_ARGON2,
        site_name="anonsign test",
        publisher_period=0.0,
    )


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    init_instance(settings)
    svc = Service.open(settings, migrate=True)
    yield svc
    svc.close_connections()


@pytest.fixture(scope="session")
def organizer() -> OrganizerSecretKey:
    return OrganizerSecretKey.generate()


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


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- signing through the form, as a browser does --------------------------------------------

CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


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
    page = client.get(f"/p/{slug}")
    assert page.status_code == 200, page.status_code
    form = {"csrf_token": csrf_token(page.get_data(as_text=True)), "identifier": identifier}
    if contact:
        form["contact"] = contact
    if consent:
        form["consent"] = "y"
    return client.post(f"/p/{slug}/sign", data=form, **kwargs)  # type: ignore[arg-type]
