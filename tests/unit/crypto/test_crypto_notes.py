"""C2SP signed notes: the Go reference vectors byte for byte, and every way a note can fail.

The vectors (PeterNeumann and EnochRoot keys, the "cryptography is the answer" note and
its malformed variants) are those of golang.org/x/mod/sumdb/note's note_test.go, the
reference implementation of c2sp.org/signed-note: Ed25519 is deterministic, so signing
the same text with the same key must give the very same note.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anonsign.crypto.notes import (
    BadNoteSignature,
    InvalidLogKey,
    InvalidLogKeyName,
    InvalidVerifierKey,
    KeyNameMismatch,
    LogSigner,
    MalformedNote,
    NoteError,
    NoteVerifier,
    NotSignedByKey,
    key_id,
    parse_note,
    validate_key_name,
)
from anonsign.errors import AnonsignError

# golang.org/x/mod/sumdb/note note_test.go
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLo"
    "x33WWd1RvMc+QQ=\n"
)
PETER_NOTE = TEXT + "\n" + PETER_SIG


def peter_signer() -> LogSigner:
    """The PeterNeumann signing key, from the Go test's PRIVATE+KEY+... string."""
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert raw[0] == 0x01
    return LogSigner.from_private_bytes("PeterNeumann", raw[1:])


@pytest.fixture
def peter() -> NoteVerifier:
    return NoteVerifier.from_verifier_key(PETER_VKEY)


@pytest.fixture
def enoch() -> NoteVerifier:
    return NoteVerifier.from_verifier_key(ENOCH_VKEY)


# --- the reference vectors ----------------------------------------------------------------


def test_the_reference_key_gives_the_reference_verifier_key_and_note() -> None:
    signer = peter_signer()
    assert signer.verifier_key() == PETER_VKEY
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.sign(TEXT) == PETER_NOTE


def test_the_reference_note_opens_with_the_reference_key(peter: NoteVerifier) -> None:
    assert peter.name == "PeterNeumann"
    assert peter.verifier_key() == PETER_VKEY
    assert peter.open(PETER_NOTE) == TEXT


def test_the_reference_note_does_not_open_with_another_key(enoch: NoteVerifier) -> None:
    with pytest.raises(NotSignedByKey, match=r"not signed by EnochRoot\+af0cfe78"):
        enoch.open(PETER_NOTE)


def test_a_second_reference_key_opens_its_own_signature(enoch: NoteVerifier) -> None:
    assert enoch.open(TEXT + "\n" + ENOCH_SIG) == TEXT
    assert enoch.key_id.hex() == "af0cfe78"


def test_key_id_is_the_spec_hash() -> None:
    raw = base64.b64decode(PETER_VKEY.split("+")[2])
    assert key_id("PeterNeumann", raw[1:]).hex() == "c74f20a3"
    assert key_id("PeterNeumanN", raw[1:]).hex() != "c74f20a3"


# --- signatures by other keys -------------------------------------------------------------


def test_a_signature_by_another_key_is_ignored(peter: NoteVerifier, enoch: NoteVerifier) -> None:
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert peter.open(both) == TEXT
    assert enoch.open(both) == TEXT
    assert peter.open(TEXT + "\n" + ENOCH_SIG + PETER_SIG) == TEXT


def test_a_note_signed_only_by_other_keys_is_refused(peter: NoteVerifier) -> None:
    with pytest.raises(NotSignedByKey, match=r"signed only by EnochRoot\+af0cfe78"):
        peter.open(TEXT + "\n" + ENOCH_SIG)


def test_a_broken_signature_by_another_key_is_still_ignored(peter: NoteVerifier) -> None:
    broken_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    assert peter.open(TEXT + "\n" + PETER_SIG + broken_enoch) == TEXT


def test_repeated_valid_signatures_are_accepted(peter: NoteVerifier) -> None:
    assert peter.open(TEXT + "\n" + PETER_SIG + PETER_SIG) == TEXT


def test_a_foreign_key_with_the_same_name_and_another_id_is_ignored() -> None:
    impostor = LogSigner.generate("PeterNeumann")
    assert impostor.key_id != peter_signer().key_id
    note = impostor.sign(TEXT)
    verifier = NoteVerifier.from_verifier_key(PETER_VKEY)
    with pytest.raises(NotSignedByKey) as caught:
        verifier.open(note)
    assert not isinstance(caught.value, KeyNameMismatch)
    # ... and the genuine signature next to it still counts.
    assert verifier.open(note + PETER_SIG) == TEXT


def test_this_keys_id_under_another_name_is_not_this_key(peter: NoteVerifier) -> None:
    renamed = PETER_SIG.replace("PeterNeumann", "PeterNeumann2")
    with pytest.raises(KeyNameMismatch, match="under the name 'PeterNeumann2'"):
        peter.open(TEXT + "\n" + renamed)


def test_a_colliding_name_and_key_id_from_another_key_fails_verification(
    peter: NoteVerifier,
) -> None:
    """An attacker can make a key whose ID collides; all they get is a failed signature."""
    other = Ed25519PrivateKey.generate()
    forged = other.sign(TEXT.encode())
    line = "\u2014 PeterNeumann " + base64.b64encode(peter.key_id + forged).decode() + "\n"
    with pytest.raises(BadNoteSignature, match=r"PeterNeumann\+c74f20a3 does not verify"):
        peter.open(TEXT + "\n" + line)
    # A bad signature by the known key spoils the note even beside a good one.
    with pytest.raises(BadNoteSignature):
        peter.open(TEXT + "\n" + PETER_SIG + line)


# --- altered notes ------------------------------------------------------------------------


def test_changed_text_fails(peter: NoteVerifier) -> None:
    with pytest.raises(BadNoteSignature):
        peter.open(PETER_NOTE.replace("cryptography", "cryptographY"))


def test_changed_signature_fails(peter: NoteVerifier) -> None:
    with pytest.raises(BadNoteSignature):
        peter.open(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:])


def test_every_single_character_change_of_the_signature_fails(peter: NoteVerifier) -> None:
    start = len(TEXT) + 1 + len("\u2014 PeterNeumann ")
    for i in range(start, len(PETER_NOTE) - 2):
        changed = PETER_NOTE[:i] + ("A" if PETER_NOTE[i] != "A" else "B") + PETER_NOTE[i + 1 :]
        with pytest.raises(NoteError):
            peter.open(changed)


@pytest.mark.parametrize(
    "note",
    [
        pytest.param(TEXT, id="no signature block"),
        pytest.param(TEXT + "\n", id="empty signature block"),
        pytest.param(TEXT + "\n" + PETER_SIG[:-1], id="no final newline"),
        pytest.param("\x01" + PETER_NOTE, id="control character"),
        pytest.param(PETER_NOTE.replace("you think", "you\tthink"), id="tab"),
        pytest.param(PETER_NOTE.replace("\n", "\r\n"), id="CRLF"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), id="bad name"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+N"), id="plus"),
        pytest.param(TEXT + "\n" + PETER_SIG + "Unexpected line.\n", id="stray line"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("\u2014", "-"), id="hyphen for em dash"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("\u2014 ", "\u2014"), id="no space"),
        pytest.param(TEXT + "\n" + "\u2014 PeterNeumann\n", id="no signature"),
        pytest.param(TEXT + "\n" + "\u2014 PeterNeumann AAAA\n", id="signature too short"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("AM=", "AM"), id="unpadded base64"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("AM=", "AN="), id="non-canonical base64"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("/", "_"), id="base64url"),
        pytest.param(TEXT + "\n" + PETER_SIG * 101, id="101 signatures"),
        pytest.param(TEXT + "\n" + "x" * (1 << 20) + "\n" + PETER_SIG, id="too large"),
    ],
)
def test_malformed_notes_are_refused(peter: NoteVerifier, note: str) -> None:
    with pytest.raises(MalformedNote, match=r"^This is not a valid signed note: "):
        peter.open(note)


def test_the_text_is_everything_before_the_last_blank_line(peter: NoteVerifier) -> None:
    signer = peter_signer()
    for text in ("a\n\nb\n", "a\n\n", "\n", "origin\n\n\n"):
        note = signer.sign(text)
        assert parse_note(note).text == text
        assert peter.open(note) == text


def test_at_least_16_signatures_are_accepted(peter: NoteVerifier) -> None:
    assert peter.open(TEXT + "\n" + ENOCH_SIG * 15 + PETER_SIG) == TEXT
    assert peter.open(TEXT + "\n" + ENOCH_SIG * 99 + PETER_SIG) == TEXT


def test_parse_note_reads_names_and_key_ids() -> None:
    parsed = parse_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    assert parsed.text == TEXT
    assert [(s.name, s.key_id.hex(), len(s.signature)) for s in parsed.signatures] == [
        ("PeterNeumann", "c74f20a3", 64),
        ("EnochRoot", "af0cfe78", 64),
    ]


# --- signing ------------------------------------------------------------------------------


def test_round_trip_with_a_new_key() -> None:
    signer = LogSigner.generate("petitions.example.org")
    note = signer.sign(
        "petitions.example.org/demo\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    )
    verifier = NoteVerifier.from_verifier_key(signer.verifier_key())
    assert verifier == signer.verifier()
    assert verifier.open(note).startswith("petitions.example.org/demo\n")
    assert note.endswith("\n")
    assert "\n\n\u2014 petitions.example.org " in note


def test_a_new_key_does_not_open_another_keys_note() -> None:
    a, b = LogSigner.generate("same.name"), LogSigner.generate("same.name")
    with pytest.raises(NotSignedByKey):
        b.verifier().open(a.sign("hello\n"))


def test_private_bytes_round_trip() -> None:
    signer = LogSigner.generate("log.example")
    raw = signer.to_private_bytes()
    assert len(raw) == 32
    again = LogSigner.from_private_bytes("log.example", raw)
    assert again.verifier_key() == signer.verifier_key()
    assert again.sign("x\n") == signer.sign("x\n")


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_private_bytes_of_the_wrong_length_are_refused(size: int) -> None:
    with pytest.raises(InvalidLogKey, match=f"is {size} bytes long, expected 32"):
        LogSigner.from_private_bytes("log.example", bytes(size))


def test_the_repr_never_shows_the_private_key() -> None:
    signer = LogSigner.generate("log.example")
    assert signer.to_private_bytes().hex() not in repr(signer)
    assert "log.example" in repr(signer)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("no final newline", id="no newline"),
        pytest.param("bell\x07\n", id="control character"),
        pytest.param("a\r\n", id="carriage return"),
    ],
)
def test_sign_refuses_text_the_spec_forbids(text: str) -> None:
    with pytest.raises(MalformedNote):
        LogSigner.generate("log.example").sign(text)


# --- names and verifier keys --------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["log.example", "example.com/log42", "PeterNeumann", "pétitions.example"]
)
def test_valid_key_names(name: str) -> None:
    assert validate_key_name(name) == name
    assert LogSigner.generate(name).name == name


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "tab\there", "nbsp\u00a0here", "em\u2003space", "nl\n", "bell\x07"]
)
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(InvalidLogKeyName, match="expected a non-empty name"):
        validate_key_name(name)
    with pytest.raises(InvalidLogKeyName):
        LogSigner.generate(name)


def test_a_verifier_key_file_may_end_with_a_newline() -> None:
    assert NoteVerifier.from_verifier_key(PETER_VKEY + "\n").verifier_key() == PETER_VKEY


def test_the_key_id_may_be_upper_case_hex() -> None:
    upper = PETER_VKEY.replace("c74f20a3", "C74F20A3")
    assert NoteVerifier.from_verifier_key(upper) == NoteVerifier.from_verifier_key(PETER_VKEY)


def test_every_mangled_verifier_key_is_refused() -> None:
    """As in the Go test: every strict substring and every one-byte change is refused."""
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) == (0, len(PETER_VKEY)):
                continue
            with pytest.raises(InvalidVerifierKey):
                NoteVerifier.from_verifier_key(PETER_VKEY[i:j])
    for i, char in enumerate(PETER_VKEY):
        changed = PETER_VKEY[:i] + chr(ord(char) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(InvalidVerifierKey):
            NoteVerifier.from_verifier_key(changed)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        pytest.param(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "not valid base64",
            id="wrong key length with its key ID",
        ),
        pytest.param(
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "starting with type byte 0x65, expected 33 bytes starting with 0x01",
            id="unknown algorithm with its key ID",
        ),
        pytest.param(
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "does not match its name and key, which give c74f20a3",
            id="wrong key ID",
        ),
        pytest.param(
            "PeterNeumanN+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "does not match its name and key",
            id="renamed",
        ),
        pytest.param("PeterNeumann", "has 1 part", id="name only"),
        pytest.param("PeterNeumann+c74f20a3", "has 2 part", id="no key"),
        pytest.param(
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "name 'Peter Neumann' is not valid",
            id="space in name",
        ),
        pytest.param(
            "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "expected 8 hex digits",
            id="short key ID",
        ),
        pytest.param(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",
            "not valid base64",
            id="base64url key",
        ),
    ],
)
def test_bad_verifier_keys_name_the_problem(key: str, message: str) -> None:
    with pytest.raises(InvalidVerifierKey, match=message):
        NoteVerifier.from_verifier_key(key)


def test_note_errors_are_anonsign_errors_with_one_sentence(peter: NoteVerifier) -> None:
    with pytest.raises(AnonsignError) as caught:
        peter.open(TEXT + "\n" + ENOCH_SIG)
    assert "\n" not in caught.value.message
    assert caught.value.message.endswith(".")


@pytest.mark.parametrize("size", [31, 33])
def test_a_public_key_of_the_wrong_length_is_refused_even_with_its_key_id(size: int) -> None:
    public = bytes(range(size))
    encoded = base64.b64encode(b"\x01" + public).decode()
    key = f"log.example+{key_id('log.example', public).hex()}+{encoded}"
    with pytest.raises(InvalidVerifierKey, match=f"holds {size + 1} bytes"):
        NoteVerifier.from_verifier_key(key)
