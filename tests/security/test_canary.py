"""Canary: sign with distinctive values, then search every byte the server keeps for them.

SECURITY.md promises that no identifier (raw, normalized, local part, or plain SHA-256),
contact, client address or User-Agent is stored or logged. These tests sign with values
that appear nowhere else and scan the instance folder (database, WAL, keys), a dump of
every database row (SQLite or PostgreSQL) and the captured logs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, MetaData, select

from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind, normalize_identifier
from anonsign.domain.petitions import Recipient
from anonsign.service import Service
from tests.conftest import sign
from tests.live import Browser, free_port, running

ADDRESS = "198.51.100.77"
FORWARDED = "203.0.113.99"
AGENT = "CanaryAgent/7.3 (zqxj-canary-browser)"

SIGNERS = [
    (IdentifierKind.EMAIL, None, "Zyx.Quorum+tag@Canary-Mail.example", "Reach me at qwv-contact-1"),
    (IdentifierKind.EMAIL, None, "plover.wexcanary@example.org", ""),
    (IdentifierKind.PHONE, "TM", "+993 65 918273", "phone qwv-contact-2 after dark"),
    (IdentifierKind.PHONE, "TM", "0099371564738", ""),
    (IdentifierKind.TEXT, None, "ZX-99-KANARY-4471", "qwv-contact-3 ✉ Ашхабад"),
]


def needles(kind: IdentifierKind, region: str | None, raw: str, contact: str) -> set[bytes]:
    normalized = normalize_identifier(kind, raw, region=region)
    found = {raw.encode(), normalized.encode(), raw.strip().lower().encode()}
    if kind is IdentifierKind.EMAIL:
        found.add(normalized.split("@")[0].encode())
        found.add(raw.split("@")[0].encode())
    if kind is IdentifierKind.PHONE:
        found.add(normalized.lstrip("+").encode())
        found.add(normalized[4:].encode())  # the national number
    for value in (raw, normalized):
        digest = hashlib.sha256(value.encode()).digest()
        found |= {digest, digest.hex().encode()}
    if contact:
        found.add(contact.encode())
        found.add(contact.encode("utf-16-le"))
    return found


def all_needles() -> set[bytes]:
    found = {ADDRESS.encode(), FORWARDED.encode(), AGENT.encode(), b"zqxj-canary"}
    for signer in SIGNERS:
        found |= needles(*signer)
    return found


def files_under(folder: Path) -> Iterable[tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield str(path), path.read_bytes()


def database_dump(engine: Engine) -> bytes:
    meta = MetaData()
    meta.reflect(engine)
    parts: list[bytes] = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value))
                    else:
                        parts.append(str(value).encode())
    return b"\n".join(parts)


def assert_nothing_found(haystacks: Iterable[tuple[str, bytes]]) -> None:
    wanted = all_needles()
    hits = [(where, n) for where, data in haystacks for n in wanted if n in data]
    assert hits == [], f"signer data found: {hits[:5]}"


def create_petitions(service: Service, organizer: OrganizerSecretKey) -> None:
    recipients = [Recipient("alice", organizer.public_key())]
    for kind, region in {(k, r) for k, r, _, _ in SIGNERS}:
        service.create_petition(
            slug=f"canary-{kind.value}",
            title=f"Canary {kind.value}",
            text="Canary petition.",
            identifier_kind=kind,
            phone_region=region,
            recipients=recipients,
        )


def test_canary_in_process(
    client: FlaskClient,
    service: Service,
    settings: Settings,
    organizer: OrganizerSecretKey,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    create_petitions(service, organizer)
    client.environ_base.update(
        {
            "REMOTE_ADDR": ADDRESS,
            "HTTP_USER_AGENT": AGENT,
            "HTTP_X_FORWARDED_FOR": FORWARDED,
            "HTTP_X_REAL_IP": FORWARDED,
        }
    )
    for kind, _region, raw, contact in SIGNERS:
        for _ in range(2):  # a repeat, too
            assert sign(client, f"canary-{kind.value}", raw, contact).status_code == 200
    # An invalid submission and an error page must not leak either.
    assert sign(client, "canary-email", ADDRESS + " " + AGENT).status_code == 400
    assert client.get("/p/" + FORWARDED).status_code == 404
    assert sum(s.signatures for s in service.summaries()) == len(SIGNERS)

    service.db.dispose()  # let SQLite settle its files before they are read
    out, err = capsys.readouterr()
    assert_nothing_found(
        [
            *files_under(settings.instance_path),
            ("database", database_dump(service.db.engine)),
            ("logs", caplog.text.encode()),
            ("stdout", out.encode()),
            ("stderr", err.encode()),
        ]
    )


@pytest.mark.slow
def test_canary_through_a_real_server(
    tmp_path: Path, service: Service, settings: Settings, organizer: OrganizerSecretKey
) -> None:
    create_petitions(service, organizer)
    port = free_port()
    env = {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": "2",
    }
    log = tmp_path / "server.log"
    headers = {
        "User-Agent": AGENT,
        "X-Forwarded-For": FORWARDED,
        "X-Real-IP": FORWARDED,
        "Forwarded": f"for={FORWARDED}",
    }
    with running(["serve", "--port", str(port)], env, port, log):
        browser = Browser(f"http://127.0.0.1:{port}", headers)
        for kind, _region, raw, contact in SIGNERS:
            status, page = browser.sign(f"canary-{kind.value}", raw, contact)
            assert status == 200, page
        assert browser.request("/p/canary-email/sign", {"identifier": ADDRESS})[0] == 400
        assert browser.request("/p/" + FORWARDED)[0] == 404
    assert sum(s.signatures for s in service.summaries()) == len(SIGNERS)
    service.db.dispose()
    assert_nothing_found(
        [
            *files_under(settings.instance_path),
            ("database", database_dump(service.db.engine)),
            ("server log", log.read_bytes()),
        ]
    )


def test_the_scan_finds_a_planted_leak(tmp_path: Path) -> None:
    """The canary scan itself must be able to fail."""
    kind, region, raw, _contact = SIGNERS[2]
    normalized = normalize_identifier(kind, raw, region=region)
    (tmp_path / "leak.bin").write_bytes(b"..." + hashlib.sha256(normalized.encode()).digest())
    with pytest.raises(AssertionError, match="signer data found"):
        assert_nothing_found(files_under(tmp_path))
