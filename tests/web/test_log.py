"""The public log end to end over HTTP: batches, checkpoints, leaves, proofs.

No page shows a signer their entry: tests/security/test_no_receipt_oracle.py says why.
"""

from __future__ import annotations

import base64
import os
import re
import threading

import pytest
from flask.testing import FlaskClient

from anonsign.audit.checkpoint import Checkpoint
from anonsign.audit.merkle import (
    empty_root,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.notes import NoteVerifier
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from tests.conftest import make_petition, sign


def checkpoint_over_http(client: FlaskClient, slug: str) -> Checkpoint:
    key = client.get("/.well-known/anonsign/key")
    assert key.status_code == 200
    assert key.mimetype == "text/plain"
    note = client.get(f"/p/{slug}/checkpoint")
    assert note.status_code == 200
    assert note.mimetype == "text/plain"
    verifier = NoteVerifier.from_verifier_key(key.get_data(as_text=True).strip())
    return Checkpoint.parse(verifier.open(note.get_data(as_text=True)))


def leaves_over_http(client: FlaskClient, slug: str, size: int) -> list[bytes]:
    entries: list[bytes] = []
    while len(entries) < size:
        answer = client.get(f"/p/{slug}/log/leaves?start={len(entries)}&end={size}")
        assert answer.status_code == 200, answer.json
        page = [base64.b64decode(e) for e in answer.json["leaves"]]  # type: ignore[index]
        assert page, "an empty page before the end of the log"
        entries += page
    return entries


def test_new_petition_has_a_signed_empty_checkpoint(
    client: FlaskClient, petition: Petition
) -> None:
    checkpoint = checkpoint_over_http(client, petition.slug)
    assert checkpoint.origin == petition.log_origin == f"anonsign/{petition.slug}"
    assert (checkpoint.size, checkpoint.root) == (0, empty_root())


def test_count_equals_distinct_signatures_and_proofs_verify(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    distinct = [f"signer{i}@example.org" for i in range(13)]
    for identifier in distinct:
        assert sign(client, petition.slug, identifier).status_code == 200
    for identifier in distinct[:4]:  # repeats, differently spelled
        assert sign(client, petition.slug, identifier.upper()).status_code == 200
    service.publish(petition.slug)
    first = checkpoint_over_http(client, petition.slug)
    assert first.size == len(distinct)
    entries = leaves_over_http(client, petition.slug, first.size)
    assert len(set(entries)) == len(entries) == first.size
    assert root(leaf_hash(e) for e in entries) == first.root
    assert entries[:13] == sorted(entries[:13])  # a batch is sorted by value, not arrival

    for index, entry in enumerate(entries):
        token = base64.urlsafe_b64encode(entry).decode().rstrip("=")
        proof = client.get(f"/p/{petition.slug}/log/inclusion?leaf={token}&size={first.size}")
        assert proof.status_code == 200
        body = proof.json
        assert body["index"] == index  # type: ignore[index]
        hashes = [base64.b64decode(h) for h in body["hashes"]]  # type: ignore[index]
        verify_inclusion(leaf_hash(entry), index, first.size, hashes, first.root)

    for identifier in ["late1@example.org", "late2@example.org"]:
        sign(client, petition.slug, identifier)
    service.publish(petition.slug)
    second = checkpoint_over_http(client, petition.slug)
    assert second.size == first.size + 2
    answer = client.get(f"/p/{petition.slug}/log/consistency?from={first.size}&to={second.size}")
    hashes = [base64.b64decode(h) for h in answer.json["hashes"]]  # type: ignore[index]
    verify_consistency(first.size, second.size, first.root, second.root, hashes)


def test_default_settings_do_not_move_the_count_for_one_signature(
    settings: Settings, organizer: OrganizerSecretKey, tmp_path: object
) -> None:
    from anonsign.config import DEFAULT_PUBLISH_INTERVAL, DEFAULT_PUBLISH_MIN
    from anonsign.instance import init_instance

    assert DEFAULT_PUBLISH_MIN > 1
    assert DEFAULT_PUBLISH_INTERVAL > 0
    defaults = settings.with_overrides(
        publish_min=DEFAULT_PUBLISH_MIN, publish_interval=DEFAULT_PUBLISH_INTERVAL
    )
    init_instance(defaults, dev=True)
    service = Service.open(defaults, migrate=True)
    try:
        make_petition(service, organizer, "quiet")
        service.sign("quiet", "lonely@example.org", "")
        assert service.publish_due() == []
        assert service.publish("quiet", force=False) is None
        assert service.checkpoint("quiet").size == 0
        for i in range(DEFAULT_PUBLISH_MIN):
            service.sign("quiet", f"crowd{i}@example.org", "")
        # Enough signatures, but not enough time since the last checkpoint's hour.
        assert service.publish("quiet", force=False) is None
        assert service.checkpoint("quiet").size == 0
    finally:
        service.close_connections()


def test_due_batches_publish_once_min_and_interval_are_met(
    settings: Settings, organizer: OrganizerSecretKey
) -> None:
    from anonsign.instance import init_instance

    quick = settings.with_overrides(publish_min=3, publish_interval=0)
    init_instance(quick, dev=True)
    service = Service.open(quick, migrate=True)
    try:
        make_petition(service, organizer, "batches", IdentifierKind.TEXT)
        for i in range(2):
            service.sign("batches", f"id-{i}", "")
        assert service.publish_due() == []
        service.sign("batches", "id-2", "")
        published = service.publish_due()
        assert [(slug, cp.size) for slug, cp in published] == [("batches", 3)]
        assert service.publish_due() == []  # idempotent
    finally:
        service.close_connections()


def test_concurrent_publishers_take_turns(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    for i in range(30):
        service.sign(petition.slug, f"c{i}@example.org", "")
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        service.publish(petition.slug)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    checkpoint = checkpoint_over_http(client, petition.slug)
    assert checkpoint.size == 30
    entries = leaves_over_http(client, petition.slug, 30)
    assert root(leaf_hash(e) for e in entries) == checkpoint.root


def test_closing_publishes_everything_and_signs_a_final_checkpoint(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    for i in range(3):
        service.sign(petition.slug, f"f{i}@example.org", "")
    assert service.checkpoint(petition.slug).size == 0
    service.close(petition.slug)
    final = checkpoint_over_http(client, petition.slug)
    assert final.size == 3
    assert service.publish(petition.slug) is None


def test_leaves_are_paged(client: FlaskClient, service: Service, petition: Petition) -> None:
    import anonsign.service as service_module

    for i in range(7):
        service.sign(petition.slug, f"p{i}@example.org", "")
    service.publish(petition.slug)
    original = service_module.MAX_LEAVES_PAGE
    service_module.MAX_LEAVES_PAGE = 3
    try:
        answer = client.get(f"/p/{petition.slug}/log/leaves?start=2&end=7")
        assert len(answer.json["leaves"]) == 3  # type: ignore[index]
        assert len(leaves_over_http(client, petition.slug, 7)) == 7
    finally:
        service_module.MAX_LEAVES_PAGE = original


@pytest.mark.parametrize(
    "query",
    [
        "log/leaves?start=0",
        "log/leaves?start=-1&end=2",
        "log/leaves?start=a&end=2",
        "log/leaves?start=2&end=1",
        "log/leaves?start=0&end=99",
        "log/leaves?start=00&end=1",
        "log/leaves?start=0&end=99999999999999999999999",
        "log/inclusion?leaf=abc&size=1",
        "log/inclusion?leaf=" + "A" * 43 + "&size=1",
        "log/inclusion?size=1",
        "log/consistency?from=0&to=1",
        "log/consistency?from=2&to=1",
        "log/consistency?from=1&to=9",
        "log/consistency?from=%ff&to=1",
    ],
)
def test_bad_log_parameters_are_400_with_a_message(
    client: FlaskClient, service: Service, petition: Petition, query: str
) -> None:
    for i in range(2):
        service.sign(petition.slug, f"b{i}@example.org", "")
    service.publish(petition.slug)
    answer = client.get(f"/p/{petition.slug}/{query}")
    assert answer.status_code == 400
    assert answer.json["error"]  # type: ignore[index]
    assert answer.headers["Cache-Control"] == "no-store"


def test_unknown_petition_log_is_404(client: FlaskClient) -> None:
    assert client.get("/p/nope/checkpoint").status_code == 404
    assert client.get("/p/nope/log/leaves?start=0&end=1").status_code == 404


def test_petition_page_shows_the_published_count(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    for i in range(4):
        service.sign(petition.slug, f"n{i}@example.org", "")
    html = client.get(f"/p/{petition.slug}").get_data(as_text=True)
    assert re.search(r">\s*0\b", html)
    service.publish(petition.slug)
    html = client.get(f"/p/{petition.slug}").get_data(as_text=True)
    assert re.search(r">\s*4\b", html)
    assert f'href="/p/{petition.slug}/audit"' in html
    audit = client.get(f"/p/{petition.slug}/audit").get_data(as_text=True)
    assert re.search(r">\s*4 signatures\b", audit)
    assert f"/p/{petition.slug}/checkpoint" in audit
    assert "/.well-known/anonsign/key" in audit


# --- the log as tlog-tiles (c2sp.org/tlog-tiles) -----------------------------------------


def test_tiles_serve_every_checkpointed_size_and_match_the_tree(
    client: FlaskClient, service: Service, organizer: OrganizerSecretKey
) -> None:
    """Two batches (300 then 40 entries): every tile of each checkpoint's tree, partial
    ones of the first size included, as the spec requires, hashes as RFC 9162 says."""
    from anonsign.audit.tiles import decode_entry_bundle, tile_path, tile_width
    from tests.conftest import add_pending

    petition = make_petition(service, organizer, "tiles", IdentifierKind.TEXT)
    entries: list[bytes] = []
    sizes = []
    for batch in (300, 40):
        new = sorted(os.urandom(32) for _ in range(batch))
        add_pending(service, petition.id, new)
        service.publish("tiles")
        entries += new  # a batch publishes in value order, after the entries before it
        sizes.append(service.checkpoint("tiles").size)
    assert sizes == [300, 340]
    leaf_hashes = [leaf_hash(e) for e in entries]
    for size in sizes:
        bundles = []
        for n in range(-(-size // 256)):
            width = tile_width(size, 0, n)
            answer = client.get(f"/p/tiles/{tile_path(None, n, width)}")
            assert answer.status_code == 200, (size, n)
            assert answer.mimetype == "application/octet-stream"
            bundles += decode_entry_bundle(answer.data, width)
            hashes = client.get(f"/p/tiles/{tile_path(0, n, width)}").data
            assert hashes == b"".join(leaf_hashes[n * 256 : n * 256 + width])
        assert bundles == entries[:size]
        # Level 1: one hash per full level-0 tile, the root of its 256 entries.
        level1 = client.get(f"/p/tiles/{tile_path(1, 0, 1)}")
        assert level1.status_code == 200
        assert level1.data == root(leaf_hashes[:256])
    # Nothing the published tree does not have: the next bundle, a wider partial tile, a
    # level above the tree, a full tile still partial.
    for path in ["tile/entries/002.p/1", "tile/0/001.p/85", "tile/2/000.p/1", "tile/1/000"]:
        missing = client.get(f"/p/tiles/{path}")
        assert missing.status_code == 404, path
        assert missing.mimetype == "text/plain"


def test_a_tile_path_out_of_the_spec_says_what_a_path_is(
    client: FlaskClient, petition: Petition
) -> None:
    answer = client.get(f"/p/{petition.slug}/tile/8/0/000")
    assert answer.status_code == 400
    assert "A tile path is <level>/<index>[.p/<width>]" in answer.json["error"]  # type: ignore[index]


def test_pending_signatures_are_in_no_tile(
    client: FlaskClient, service: Service, petition: Petition
) -> None:
    """Tiles follow the checkpoint: a signature not yet published is in none of them."""
    assert sign(client, petition.slug, "waiting@example.org").status_code == 200
    assert client.get(f"/p/{petition.slug}/tile/entries/000.p/1").status_code == 404
    service.publish(petition.slug)
    assert client.get(f"/p/{petition.slug}/tile/entries/000.p/1").status_code == 200
