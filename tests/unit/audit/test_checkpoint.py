"""C2SP tlog-checkpoint bodies: the exact text, strict parsing, extension lines kept aside."""

from __future__ import annotations

import base64

import pytest

from anonsign.audit import merkle
from anonsign.audit.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    decode_base64,
    make_origin,
    petition_of,
)
from anonsign.audit.merkle import empty_root
from anonsign.crypto.notes import LogSigner

ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
# The example body of c2sp.org/tlog-checkpoint.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_to_text_is_origin_size_and_base64_root() -> None:
    checkpoint = Checkpoint("log.example/demo", 1551, ROOT)
    assert checkpoint.to_text() == f"log.example/demo\n1551\n{ROOT_B64}\n"


def test_the_empty_log() -> None:
    checkpoint = Checkpoint("log.example/demo", 0, empty_root())
    assert checkpoint.to_text() == (
        "log.example/demo\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    )
    assert Checkpoint.parse(checkpoint.to_text()) == checkpoint


def test_the_spec_example_parses_and_round_trips() -> None:
    checkpoint = Checkpoint.parse(SPEC_BODY)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.to_text() == SPEC_BODY


def test_a_signed_checkpoint_opens_to_the_same_checkpoint() -> None:
    signer = LogSigner.generate("log.example")
    checkpoint = Checkpoint(make_origin(signer.name, "demo"), 7, ROOT)
    note = signer.sign(checkpoint.to_text())
    assert Checkpoint.parse(signer.verifier().open(note)) == checkpoint


def test_extension_lines_are_kept_but_take_no_part_in_equality() -> None:
    parsed = Checkpoint.parse(SPEC_BODY + "ext one\nrandom-2\n")
    assert parsed.extensions == ("ext one", "random-2")
    assert parsed == Checkpoint.parse(SPEC_BODY)
    assert hash(parsed) == hash(Checkpoint.parse(SPEC_BODY))
    assert parsed.to_text() == SPEC_BODY + "ext one\nrandom-2\n"


def test_origin_size_and_root_each_take_part_in_equality() -> None:
    base = Checkpoint("a/b", 5, ROOT)
    assert base == Checkpoint("a/b", 5, ROOT)
    assert base != Checkpoint("a/c", 5, ROOT)
    assert base != Checkpoint("a/b", 6, ROOT)
    assert base != Checkpoint("a/b", 5, bytes(32))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "does not end with a newline", id="empty"),
        pytest.param(SPEC_BODY[:-1], "does not end with a newline", id="no final newline"),
        pytest.param("origin\n5\n", "has 2 line", id="two lines"),
        pytest.param(f"\n5\n{ROOT_B64}\n", "origin \\(line 1\\) is empty", id="empty origin"),
        pytest.param(f"o\n05\n{ROOT_B64}\n", "tree size \\(line 2\\) is '05'", id="leading zero"),
        pytest.param(f"o\n00\n{ROOT_B64}\n", "'00'", id="double zero"),
        pytest.param(f"o\n+5\n{ROOT_B64}\n", "'\\+5'", id="plus sign"),
        pytest.param(f"o\n-1\n{ROOT_B64}\n", "'-1'", id="negative"),
        pytest.param(f"o\n 5\n{ROOT_B64}\n", "' 5'", id="space"),
        pytest.param(f"o\n1_000\n{ROOT_B64}\n", "'1_000'", id="underscore"),
        pytest.param(f"o\n\u0665\n{ROOT_B64}\n", "tree size", id="arabic digit"),
        pytest.param(f"o\n0x10\n{ROOT_B64}\n", "'0x10'", id="hex"),
        pytest.param(f"o\n\n{ROOT_B64}\n", "''", id="empty size"),
        pytest.param(f"o\n{1 << 64}\n{ROOT_B64}\n", "between 0 and", id="above uint64"),
        pytest.param("o\n5\n" + base64.b64encode(bytes(31)).decode() + "\n", "31 bytes", id="31"),
        pytest.param("o\n5\n" + base64.b64encode(bytes(33)).decode() + "\n", "33 bytes", id="33"),
        pytest.param("o\n5\n\n", "is 0 bytes", id="empty root"),
        pytest.param(f"o\n5\n{ROOT_B64.rstrip('=')}\n", "not standard base64", id="unpadded"),
        pytest.param(
            "o\n5\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n",
            "not standard base64",
            id="base64url",
        ),
        pytest.param(
            "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",
            "not standard base64",
            id="non-canonical",
        ),
        pytest.param(f"o\n5\n {ROOT_B64}\n", "not standard base64", id="leading space"),
        pytest.param(SPEC_BODY + "\n", "line 4 is empty", id="empty extension line"),
        pytest.param(SPEC_BODY + "ext\n\nmore\n", "line 5 is empty", id="empty line later"),
    ],
)
def test_parse_refuses_what_the_spec_does_not_allow(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.parse(text)


def test_the_largest_size_parses() -> None:
    assert Checkpoint.parse(f"o\n{MAX_TREE_SIZE}\n{ROOT_B64}\n").size == MAX_TREE_SIZE


@pytest.mark.parametrize(
    ("origin", "size", "root", "message"),
    [
        pytest.param("", 0, ROOT, "non-empty", id="empty origin"),
        pytest.param("a\nb", 0, ROOT, "newline or control", id="two-line origin"),
        pytest.param("a", -1, ROOT, "between 0 and", id="negative size"),
        pytest.param("a", 1 << 64, ROOT, "between 0 and", id="huge size"),
        pytest.param("a", True, ROOT, "whole number", id="bool size"),
        pytest.param("a", 0, bytes(31), "32 bytes, got 31", id="short root"),
        pytest.param("a", 0, ROOT.hex(), "32 bytes, got str", id="hex root"),
    ],
)
def test_construction_refuses_values_that_make_no_checkpoint(
    origin: str, size: int, root: bytes, message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        Checkpoint(origin, size, root)


def test_origins_of_petition_logs() -> None:
    assert make_origin("log.example", "demo") == "log.example/demo"
    assert petition_of("log.example/demo", "log.example") == "demo"
    assert petition_of("example.com/logs/demo", "example.com/logs") == "demo"


@pytest.mark.parametrize(
    ("origin", "log_name"),
    [
        ("other.example/demo", "log.example"),
        ("log.example", "log.example"),
        ("log.example/", "log.example"),
        ("log.example/a/b", "log.example"),
        ("log.examplex/demo", "log.example"),
    ],
)
def test_origins_of_other_logs_are_not_petitions_of_this_one(origin: str, log_name: str) -> None:
    assert petition_of(origin, log_name) is None


def test_make_origin_refuses_slashes_and_empty_parts() -> None:
    for name, slug in [("", "demo"), ("log", ""), ("log", "a/b")]:
        with pytest.raises(CheckpointError):
            make_origin(name, slug)


def test_decode_base64_is_strict() -> None:
    assert decode_base64(ROOT_B64) == ROOT
    for bad in [ROOT_B64.rstrip("="), ROOT_B64 + "\n", "é", "AB=C", "AAB="]:
        assert decode_base64(bad) is None


def test_the_example_in_docs_formats_md_is_what_the_code_makes() -> None:
    """docs/formats.md shows this key and checkpoint; they must stay true."""
    signer = LogSigner.from_private_bytes("petitions.example.org", bytes(range(32)))
    assert signer.verifier_key() == (
        "petitions.example.org+abe50d98+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
    )
    entries = [bytes([i]) * 32 for i in range(3)]
    root = merkle.root(merkle.leaf_hash(e) for e in entries)
    checkpoint = Checkpoint(make_origin(signer.name, "free-the-press"), 3, root)
    assert signer.sign(checkpoint.to_text()) == (
        "petitions.example.org/free-the-press\n"
        "3\n"
        "uo2Ut/vOyue4HEyAV0/iRzSmkXv5wezWb/Pgw06tRiA=\n"
        "\n"
        "\u2014 petitions.example.org q+UNmFEIa/wvs9E/eIR94WU3dlwZTnMyIzaX9qBkEUynybrcBHn1OaWr/wF"
        "KrN9lgg7yAbT8vUkO/SbiWZVIbwAreQM=\n"
    )
