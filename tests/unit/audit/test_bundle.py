"""Log bundles on disk, petition addresses, and fetching a log and its proofs over HTTP.

Fetching runs against tests/logserver.py, a tiny server on 127.0.0.1 that speaks the
anonsign endpoint contract and can be made to misbehave.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.logserver import HonestLog, LogServer, make_log, write_log_bundle

from anonsign.audit import merkle
from anonsign.audit.bundle import (
    BUNDLE_FORMAT,
    BundleError,
    FetchError,
    encode_entry,
    fetch,
    fetch_consistency,
    fetch_inclusion,
    parse_petition_url,
    read_bundle,
)
from anonsign.audit.tiles import encode_entry_bundle
from anonsign.audit.verify import verify_bundle
from anonsign.crypto.notes import LogSigner

# --- bundles on disk ----------------------------------------------------------------------


def test_a_written_bundle_reads_back(log: HonestLog, bundle_dir: Path) -> None:
    bundle = read_bundle(bundle_dir)
    assert bundle.origin == log.origin
    assert bundle.source is None
    assert bundle.key_text == log.signer.verifier_key() + "\n"
    assert bundle.checkpoint_note == log.note()
    assert list(bundle.entries()) == log.entries
    assert sorted(p.name for p in bundle_dir.iterdir()) == [
        "bundle.json",
        "checkpoint",
        "key",
        "leaves",
    ]


def test_the_files_are_in_the_documented_format(log: HonestLog, bundle_dir: Path) -> None:
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    assert meta == {"format": BUNDLE_FORMAT, "origin": "log.example/demo", "source": None}
    lines = (bundle_dir / "leaves").read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [base64.b64decode(line, validate=True) for line in lines[:-1]] == log.entries
    assert all(len(line) == 44 for line in lines[:-1])


def test_a_bundle_is_never_written_over_an_existing_folder(log: HonestLog, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("keep me")
    with pytest.raises(BundleError, match="already exists and is not an empty folder"):
        write_log_bundle(tmp_path / "full", log)
    assert (tmp_path / "full" / "something").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert read_bundle(write_log_bundle(tmp_path / "empty", log)).origin == log.origin


def test_a_failed_write_leaves_nothing_behind(log: HonestLog, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="A log entry is 32 bytes, got 3"):
        write_log_bundle(tmp_path / "b", log, entries=[*log.entries, b"abc"])
    assert list(tmp_path.iterdir()) == []


def test_encode_entry_refuses_other_lengths() -> None:
    assert len(encode_entry(bytes(32))) == 44
    with pytest.raises(BundleError):
        encode_entry(bytes(31))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bundle.json", None, "bundle.json: No such file"),
        ("bundle.json", b"{", "bundle.json is not valid JSON"),
        ("bundle.json", b"[]", "bundle.json holds list, expected an object"),
        ("bundle.json", b'{"format": "x", "origin": "o", "source": null}', "says format 'x'"),
        (
            "bundle.json",
            b'{"format": "anonsign-log-bundle-v1", "origin": "o"}',
            "holds \\['format', 'origin'\\]",
        ),
        (
            "bundle.json",
            b'{"format": "anonsign-log-bundle-v1", "origin": "", "source": null}',
            "has origin ''",
        ),
        (
            "bundle.json",
            b'{"format": "anonsign-log-bundle-v1", "origin": "o", "source": 5}',
            "has source 5",
        ),
        ("key", None, "key: No such file"),
        ("key", b"\xff\xfe", "key is not UTF-8 text"),
        ("key", b"x" * 70000, "key is larger than 65,536 bytes"),
        ("checkpoint", None, "checkpoint: No such file"),
        ("leaves", None, "leaves is missing"),
    ],
)
def test_unreadable_bundle_files_are_named(
    bundle_dir: Path, name: str, content: bytes | None, message: str
) -> None:
    path = bundle_dir / name
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    with pytest.raises(BundleError, match=message) as caught:
        read_bundle(bundle_dir)
    assert str(bundle_dir) in caught.value.message


def _leaves_error(bundle_dir: Path, data: bytes) -> str:
    (bundle_dir / "leaves").write_bytes(data)
    with pytest.raises(BundleError) as caught:
        list(read_bundle(bundle_dir).entries())
    return caught.value.message


GOOD = base64.b64encode(bytes(range(32)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD + b"\n\n", "line 2 holds nothing, expected"),
        (GOOD + b"\n" + GOOD[:-1] + b"\n", "line 2 holds 43 characters that are not"),
        (base64.b64encode(bytes(33)) + b"\n", "line 1 holds the base64 of 33 bytes"),
        (base64.b64encode(bytes(30)) + b"==\n", "line 1 holds the base64 of 30 bytes"),
        (GOOD[:42] + b"9=\n", "non-canonical base64"),
        (GOOD.replace(b"A", b"-", 1) + b"\n", "not standard base64"),
        (GOOD + b"\r\n", "line 1 holds 45 characters"),
        (b" " + GOOD + b"\n", "line 1 holds 45 characters"),
    ],
)
def test_bad_leaves_lines_are_named(bundle_dir: Path, data: bytes, message: str) -> None:
    error = _leaves_error(bundle_dir, data)
    assert message in error
    assert error.startswith(str(bundle_dir / "leaves"))


def test_a_missing_final_newline_is_accepted(bundle_dir: Path) -> None:
    (bundle_dir / "leaves").write_bytes(GOOD + b"\n" + GOOD)
    assert list(read_bundle(bundle_dir).entries()) == [bytes(range(32))] * 2


# --- petition addresses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base", "slug"),
    [
        ("http://xyz.onion/p/demo", "http://xyz.onion", "demo"),
        ("http://xyz.onion/p/demo/", "http://xyz.onion", "demo"),
        ("https://example.org:8443/p/free-the-press", "https://example.org:8443", "free-the-press"),
        ("http://127.0.0.1:5000/petitions/p/demo", "http://127.0.0.1:5000/petitions", "demo"),
        ("  http://xyz.onion/p/demo\n", "http://xyz.onion", "demo"),
    ],
)
def test_petition_addresses_split_into_base_and_slug(url: str, base: str, slug: str) -> None:
    address = parse_petition_url(url)
    assert (address.base, address.slug) == (base, slug)
    assert address.key_url == f"{base}/.well-known/anonsign/key"
    assert address.checkpoint_url == f"{base}/p/{slug}/checkpoint"
    assert address.leaves_url(5, 9) == f"{base}/p/{slug}/log/leaves?start=5&end=9"


@pytest.mark.parametrize(
    "url",
    [
        "xyz.onion/p/demo",
        "ftp://xyz.onion/p/demo",
        "file:///p/demo",
        "http:///p/demo",
        "http://xyz.onion/",
        "http://xyz.onion/p/",
        "http://xyz.onion/p/demo/checkpoint",
        "http://xyz.onion/q/demo",
        "http://xyz.onion/p/demo?x=1",
        "http://xyz.onion/p/demo#top",
        "http://user:pw@xyz.onion/p/demo",
        "http://xyz.onion:99999/p/demo",
        "http://xyz.onion/p/de%20mo",
        "http://xyz.onion/p/de\x00mo",
    ],
)
def test_anything_else_is_refused_with_an_example(url: str) -> None:
    with pytest.raises(FetchError, match="expected http\\(s\\)://<server>/p/<petition>"):
        parse_petition_url(url)


def test_inclusion_queries_use_unpadded_base64url() -> None:
    address = parse_petition_url("http://xyz.onion/p/demo")
    entry = b"\xfb\xff" * 16
    url = address.inclusion_url(entry, 7)
    leaf = base64.urlsafe_b64encode(entry).decode().rstrip("=")
    assert "-" in leaf
    assert "_" in leaf
    assert url == f"http://xyz.onion/p/demo/log/inclusion?leaf={leaf}&size=7"


# --- fetching -----------------------------------------------------------------------------


@pytest.fixture
def server(log: HonestLog) -> Iterator[LogServer]:
    with LogServer(log).running() as running:
        yield running


def test_fetch_reads_every_entry_bundle_in_order(signer: LogSigner, tmp_path: Path) -> None:
    log = make_log(600, signer)
    seen: list[tuple[int, int]] = []
    with LogServer(log).running() as server:
        bundle = fetch(server.url, tmp_path / "b", lambda done, total: seen.append((done, total)))
    assert list(bundle.entries()) == log.entries
    assert bundle.origin == log.origin
    assert bundle.source == server.url
    assert bundle.checkpoint_note == log.note()
    assert seen == [(0, 600), (600, 600)]
    assert server.requests[:2] == ["/.well-known/anonsign/key", "/p/demo/checkpoint"]
    # Two full bundles of 256 and the partial one of the 88 after them, nothing else.
    assert sorted(server.requests[2:]) == [
        "/p/demo/tile/entries/000",
        "/p/demo/tile/entries/001",
        "/p/demo/tile/entries/002.p/88",
    ]
    assert verify_bundle(bundle, log.signer.verifier_key()).ok


def test_fetch_takes_exactly_the_checkpoint_size(
    server: LogServer, log: HonestLog, tmp_path: Path
) -> None:
    """The log grows while the auditor reads; the bundle holds what was signed, no more."""
    server.faults["size"] = 30
    bundle = fetch(server.url, tmp_path / "b")
    assert list(bundle.entries()) == log.entries[:30]
    assert server.requests[2:] == ["/p/demo/tile/entries/000.p/30"]
    assert verify_bundle(bundle, log.signer.verifier_key()).ok


def test_fetch_of_an_empty_log(server: LogServer, log: HonestLog, tmp_path: Path) -> None:
    server.faults["size"] = 0
    bundle = fetch(server.url, tmp_path / "b")
    assert list(bundle.entries()) == []
    assert not [r for r in server.requests if "/tile/" in r]


def test_a_short_bundle_is_an_error(server: LogServer, log: HonestLog, tmp_path: Path) -> None:
    server.faults["bundles"] = {"tile/entries/000.p/50": encode_entry_bundle(log.entries[:21])}
    expected = "did not answer an entry bundle: The entry bundle holds 21 entries, not 50"
    with pytest.raises(FetchError, match=expected):
        fetch(server.url, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_more_entries_than_the_width_is_an_error(
    server: LogServer, log: HonestLog, tmp_path: Path
) -> None:
    server.faults["size"] = 3
    server.faults["bundles"] = {"tile/entries/000.p/3": encode_entry_bundle(log.entries[:7])}
    with pytest.raises(FetchError, match="holds 7 entries, not 3"):
        fetch(server.url, tmp_path / "b")


def test_a_bundle_cut_inside_an_entry_is_an_error(
    server: LogServer, log: HonestLog, tmp_path: Path
) -> None:
    cut = encode_entry_bundle(log.entries)[:-5]
    server.faults["bundles"] = {"tile/entries/000.p/50": cut}
    with pytest.raises(FetchError, match="The entry bundle ends inside entry 49"):
        fetch(server.url, tmp_path / "b")


def test_a_bad_entry_in_a_bundle_is_an_error(
    server: LogServer, log: HonestLog, tmp_path: Path
) -> None:
    server.faults["leaves"] = [*log.entries[:10], b"short", *log.entries[11:]]
    with pytest.raises(FetchError, match="holds a 5-byte entry at index 10, expected 32 bytes"):
        fetch(server.url, tmp_path / "b")


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/.well-known/anonsign/key", 404, "answered HTTP 404 Not Found, expected 200: broken"),
        ("/p/demo/checkpoint", 500, "answered HTTP 500 Internal Server Error, expected 200"),
        ("/p/demo/tile/entries/000.p/50", 503, "answered HTTP 503"),
    ],
)
def test_http_errors_are_one_line(
    server: LogServer, tmp_path: Path, path: str, status: int, message: str
) -> None:
    server.faults["status"] = {path: status}
    with pytest.raises(FetchError, match=message) as caught:
        fetch(server.url, tmp_path / "b")
    assert caught.value.message.startswith(server.base + path)
    assert "\n" not in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_redirects_are_not_followed(server: LogServer, tmp_path: Path) -> None:
    server.faults["redirect"] = True
    with pytest.raises(FetchError, match="answered HTTP 302"):
        fetch(server.url, tmp_path / "b")


def test_a_checkpoint_that_is_not_one_is_an_error(server: LogServer, tmp_path: Path) -> None:
    server.faults["note"] = "<html>hello</html>"
    with pytest.raises(FetchError, match="checkpoint did not answer a checkpoint"):
        fetch(server.url, tmp_path / "b")


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match=r"^Cannot reach http://127\.0\.0\.1:\d+/\.well-known"):
        fetch(f"http://127.0.0.1:{port}/p/demo", tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_petition_is_a_404_with_the_servers_reason(
    server: LogServer, tmp_path: Path
) -> None:
    with pytest.raises(FetchError, match="404 Not Found, expected 200: There is no petition here"):
        fetch(server.base + "/p/nothing", tmp_path / "b")


def test_fetch_refuses_a_folder_in_use_before_asking_anything(
    server: LogServer, tmp_path: Path
) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(BundleError, match="already exists"):
        fetch(server.url, tmp_path / "b")
    assert server.requests == []


# --- proofs -------------------------------------------------------------------------------


def test_the_consistency_client_returns_a_proof_that_verifies(
    server: LogServer, log: HonestLog
) -> None:
    proof = fetch_consistency(server.url, 20, 50)
    old, new = log.checkpoint(20), log.checkpoint(50)
    merkle.verify_consistency(20, 50, old.root, new.root, proof)
    assert server.requests == ["/p/demo/log/consistency?from=20&to=50"]


def test_a_forged_consistency_proof_does_not_verify(server: LogServer, log: HonestLog) -> None:
    server.faults["consistency"] = [bytes(32)] * 3
    proof = fetch_consistency(server.url, 20, 50)
    with pytest.raises(merkle.MerkleError):
        merkle.verify_consistency(20, 50, log.checkpoint(20).root, log.checkpoint().root, proof)


def test_the_inclusion_client_returns_a_proof_that_verifies(
    server: LogServer, log: HonestLog
) -> None:
    entry = log.entries[33]
    proof = fetch_inclusion(server.url, entry, 40)
    assert (proof.index, proof.size) == (33, 40)
    merkle.verify_inclusion(
        merkle.leaf_hash(entry),
        proof.index,
        proof.size,
        list(proof.hashes),
        log.checkpoint(40).root,
    )


def test_an_inclusion_proof_for_another_entry_does_not_verify(
    server: LogServer, log: HonestLog
) -> None:
    proof = fetch_inclusion(server.url, log.entries[33], 40)
    with pytest.raises(merkle.MerkleError):
        merkle.verify_inclusion(
            merkle.leaf_hash(log.entries[34]),
            proof.index,
            proof.size,
            list(proof.hashes),
            log.checkpoint(40).root,
        )


def test_an_entry_not_in_the_log_is_the_servers_404(server: LogServer) -> None:
    with pytest.raises(FetchError, match="404 Not Found, expected 200: no such entry"):
        fetch_inclusion(server.url, bytes(32), 40)


def test_proof_clients_refuse_bad_arguments(server: LogServer) -> None:
    with pytest.raises(FetchError, match="A log entry is 32 bytes, got 3"):
        fetch_inclusion(server.url, b"abc", 5)
    with pytest.raises(FetchError, match="whole number of 0 or more, got -1"):
        fetch_consistency(server.url, -1, 5)
    assert server.requests == []
