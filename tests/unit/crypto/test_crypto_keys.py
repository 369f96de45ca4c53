"""Organizer public keys: text form, .pub files, key ids, and every refusal message."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from anonsign import errors
from anonsign.crypto import keys, labels
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.keys import OrganizerPublicKey, load_public_key, validate_key_name


@pytest.fixture
def pub(org_keys: tuple[OrganizerSecretKey, ...]) -> OrganizerPublicKey:
    return org_keys[0].public_key()


def test_raw_is_mlkem_then_x25519(pub: OrganizerPublicKey) -> None:
    assert len(pub.raw) == keys.PUBLIC_KEY_SIZE == 1184 + 32


def test_key_id_is_labelled_sha256_prefix(pub: OrganizerPublicKey) -> None:
    # Independent check with the standard library's unkeyed SHA-256.
    expected = hashlib.sha256(labels.ORGANIZER_KEY_ID + pub.raw).digest()[:16]
    assert pub.key_id == expected
    assert len(pub.key_id) == keys.KEY_ID_SIZE == 16


def test_fingerprint_is_grouped_lowercase_hex(pub: OrganizerPublicKey) -> None:
    assert re.fullmatch(r"[0-9a-f]{4}( [0-9a-f]{4}){7}", pub.fingerprint)
    assert pub.fingerprint.replace(" ", "") == pub.key_id.hex()


def test_distinct_keys_have_distinct_ids(org_keys: tuple[OrganizerSecretKey, ...]) -> None:
    assert len({key.public_key().key_id for key in org_keys}) == len(org_keys)


def test_text_round_trip(pub: OrganizerPublicKey) -> None:
    text = pub.to_text()
    assert text.startswith("anonsign-organizer-v1:")
    assert "=" not in text
    assert re.fullmatch(r"anonsign-organizer-v1:[A-Za-z0-9_-]+", text)
    assert OrganizerPublicKey.from_text(text) == pub
    assert OrganizerPublicKey.from_text(f"  {text}  \n") == pub


def test_repr_is_short_and_names_the_fingerprint(pub: OrganizerPublicKey) -> None:
    assert repr(pub) == f"OrganizerPublicKey(fingerprint='{pub.fingerprint}')"


def test_public_key_file_text(pub: OrganizerPublicKey) -> None:
    text = pub.public_key_file_text("alice")
    assert text.splitlines() == [
        '# anonsign organizer public key "alice"',
        f"# fingerprint: {pub.fingerprint}",
        "# Safe to share. Give it to the server operator for: "
        "anonsign petition create ... --recipient alice.pub",
        pub.to_text(),
    ]
    assert text.endswith("\n")
    assert OrganizerPublicKey.from_text(text) == pub


def test_pub_file_tolerates_crlf_bom_and_blank_lines(pub: OrganizerPublicKey) -> None:
    text = "\ufeff" + pub.public_key_file_text("alice").replace("\n", "\r\n") + "\r\n\r\n"
    assert OrganizerPublicKey.from_text(text) == pub


def test_public_key_file_text_refuses_bad_names(pub: OrganizerPublicKey) -> None:
    with pytest.raises(errors.InvalidKeyName):
        pub.public_key_file_text('alice"\nanonsign-organizer-v1:AAAA')


def test_secret_key_file_is_refused_with_its_own_message(
    org_keys: tuple[OrganizerSecretKey, ...],
) -> None:
    from anonsign.crypto.keyfile import encrypt_secret_key

    secret_text = encrypt_secret_key(org_keys[0], "correct horse", "alice")
    with pytest.raises(errors.KeyFileError) as info:
        OrganizerPublicKey.from_text(secret_text)
    assert info.value.message == "This is a secret key file; give the .pub file instead."


def test_wrong_prefix_message() -> None:
    with pytest.raises(errors.KeyFileError) as info:
        OrganizerPublicKey.from_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI")
    assert info.value.message == (
        "This is not an anonsign organizer public key "
        "(it should start with anonsign-organizer-v1:)."
    )


def test_unknown_version_message(pub: OrganizerPublicKey) -> None:
    text = pub.to_text().replace("-v1:", "-v2:")
    with pytest.raises(errors.KeyFileError, match="format this version of anonsign does not know"):
        OrganizerPublicKey.from_text(text)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   \n# x\n"])
def test_no_key_line(text: str) -> None:
    with pytest.raises(errors.KeyFileError, match="holds no organizer public key"):
        OrganizerPublicKey.from_text(text)


def test_two_key_lines(org_keys: tuple[OrganizerSecretKey, ...]) -> None:
    text = org_keys[0].public_key().to_text() + "\n" + org_keys[1].public_key().to_text()
    with pytest.raises(errors.KeyFileError, match="exactly one key line"):
        OrganizerPublicKey.from_text(text)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda body: body[:-1] + "!",  # not base64url
        lambda body: body.replace("-", "+").replace("_", "/") + "+",  # standard alphabet
        lambda body: body + "==",  # padding
        lambda body: body[:-1],  # one character short: 4n+1 characters
        lambda body: body + "é",  # not ASCII
    ],
)
def test_bad_base64_is_damaged(pub: OrganizerPublicKey, mangle: object) -> None:
    body = pub.to_text().removeprefix(labels.PUBLIC_KEY_PREFIX)
    assert callable(mangle)
    with pytest.raises(errors.KeyFileError, match="damaged"):
        OrganizerPublicKey.from_text(labels.PUBLIC_KEY_PREFIX + mangle(body))


def test_non_canonical_trailing_bits_are_refused(pub: OrganizerPublicKey) -> None:
    # 1216 bytes encode to 1622 characters whose last one carries 4 unused bits; a
    # second spelling of the same key must not exist.
    body = pub.to_text().removeprefix(labels.PUBLIC_KEY_PREFIX)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(body[-1])
    twin = body[:-1] + alphabet[last | 0x01]
    assert twin != body
    assert base64.urlsafe_b64decode(twin + "==") == pub.raw
    with pytest.raises(errors.KeyFileError, match="not valid base64url"):
        OrganizerPublicKey.from_text(labels.PUBLIC_KEY_PREFIX + twin)


@pytest.mark.parametrize("size", [0, 32, 1184, 1215, 1217])
def test_wrong_length_is_refused(pub: OrganizerPublicKey, size: int) -> None:
    raw = (pub.raw + bytes(8))[:size]
    with pytest.raises(errors.KeyFileError, match="wrong length"):
        OrganizerPublicKey.from_text(labels.PUBLIC_KEY_PREFIX + b64url(raw))


def test_invalid_mlkem_part_is_refused(pub: OrganizerPublicKey) -> None:
    # Coefficients must be below q = 3329; 0xff bytes encode 4095.
    raw = b"\xff" * 1184 + pub.raw[1184:]
    with pytest.raises(errors.KeyFileError, match="ML-KEM part"):
        OrganizerPublicKey(raw)


@pytest.mark.parametrize("point", [bytes(32), (1).to_bytes(32, "little")])
def test_low_order_x25519_part_is_refused(pub: OrganizerPublicKey, point: bytes) -> None:
    with pytest.raises(errors.KeyFileError, match="X25519 part"):
        OrganizerPublicKey(pub.raw[:1184] + point)


def test_raw_must_be_bytes(pub: OrganizerPublicKey) -> None:
    with pytest.raises(TypeError):
        OrganizerPublicKey(bytearray(pub.raw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["a", "alice", "Alice-2", "org.key_1", "0", "a" * 64, "x-" + "y" * 62]
)
def test_valid_key_names(name: str) -> None:
    assert validate_key_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".hidden", "-rf", "_x", "a" * 65, "a b", "a/b", "../x", "é", "a\n", "a\x00", "alice.pub "],
)
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(errors.InvalidKeyName) as info:
        validate_key_name(name)
    assert "letters, digits" in info.value.message


def test_load_public_key(tmp_path: Path, pub: OrganizerPublicKey) -> None:
    path = tmp_path / "alice.pub"
    path.write_text(pub.public_key_file_text("alice"), encoding="utf-8")
    assert load_public_key(path) == pub


def test_load_public_key_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nobody.pub"
    with pytest.raises(errors.KeyFileError) as info:
        load_public_key(path)
    assert info.value.message == f"{path}: no such file."


def test_load_public_key_folder(tmp_path: Path) -> None:
    with pytest.raises(errors.KeyFileError, match="is a folder"):
        load_public_key(tmp_path)


def test_load_public_key_binary_and_huge_files(tmp_path: Path) -> None:
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(errors.KeyFileError, match="not a text file"):
        load_public_key(binary)
    huge = tmp_path / "huge.pub"
    huge.write_bytes(b"#" * (keys.MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(errors.KeyFileError, match="far too large"):
        load_public_key(huge)


def test_load_public_key_names_the_path_in_parse_errors(
    tmp_path: Path, org_keys: tuple[OrganizerSecretKey, ...]
) -> None:
    from anonsign.crypto.keyfile import encrypt_secret_key

    path = tmp_path / "alice.key"
    path.write_text(encrypt_secret_key(org_keys[0], "pw", "alice"), encoding="utf-8")
    with pytest.raises(errors.KeyFileError) as info:
        load_public_key(path)
    assert info.value.message == f"{path}: This is a secret key file; give the .pub file instead."
    assert "\n" not in info.value.message
