"""Organizer secret key files: round trips, tampering, weak costs and what the .pub leaks."""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from anonsign import errors
from anonsign.crypto import keyfile, labels
from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keyfile import (
    OrganizerSecretKey,
    decrypt_secret_key,
    encrypt_secret_key,
    load_secret_key,
)
from anonsign.crypto.seal import seal_contact
from anonsign.crypto.unseal import open_contact

PASSPHRASE = "correct horse battery staple"
Keys = tuple[OrganizerSecretKey, OrganizerSecretKey, OrganizerSecretKey]


@pytest.fixture
def key(org_keys: Keys) -> OrganizerSecretKey:
    return org_keys[0]


@pytest.fixture
def key_text(key: OrganizerSecretKey) -> str:
    return encrypt_secret_key(key, PASSPHRASE, "alice")


def replace_line(text: str, field: str, value: str) -> str:
    lines = text.split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{field}: "))
    lines[index] = f"{field}: {value}"
    return "\n".join(lines)


# --- the real cost (opts out of the cheap fixture) ---------------------------------------


@pytest.mark.real_kdf
def test_real_defaults_are_strong() -> None:
    for params in (keyfile.KEYFILE_KDF, keyfile.MIN_KEYFILE_KDF):
        assert params.memory_kib >= 256 * 1024
        assert params.time_cost >= 3
    assert Argon2Params(time_cost=3, memory_kib=262144, parallelism=4) == keyfile.KEYFILE_KDF
    assert keyfile.MIN_KEYFILE_KDF.time_cost <= keyfile.KEYFILE_KDF.time_cost
    assert keyfile.MIN_KEYFILE_KDF.memory_kib <= keyfile.KEYFILE_KDF.memory_kib


@pytest.mark.real_kdf
@pytest.mark.slow
def test_real_cost_round_trip(key: OrganizerSecretKey) -> None:
    text = encrypt_secret_key(key, PASSPHRASE, "alice")
    assert "kdf: argon2id t=3 m=262144 p=4\n" in text
    name, opened = decrypt_secret_key(text, PASSPHRASE)
    assert name == "alice"
    assert opened.private_bytes_raw() == key.private_bytes_raw()


@pytest.mark.real_kdf
def test_real_floor_refuses_a_cheap_file_before_deriving(key: OrganizerSecretKey) -> None:
    cheap = replace_line(
        encrypt_secret_key_with(key, Argon2Params(1, 8192, 1)), "kdf", "argon2id t=2 m=262144 p=4"
    )
    with pytest.raises(errors.WeakKeyFile, match=r"t=2 m=262144 p=4\) is weaker"):
        decrypt_secret_key(cheap, PASSPHRASE)


def encrypt_secret_key_with(key: OrganizerSecretKey, params: Argon2Params) -> str:
    original = keyfile.KEYFILE_KDF
    keyfile.KEYFILE_KDF = params
    try:
        return encrypt_secret_key(key, PASSPHRASE, "alice")
    finally:
        keyfile.KEYFILE_KDF = original


# --- format and round trip -----------------------------------------------------------------


def test_file_format(key: OrganizerSecretKey, key_text: str) -> None:
    lines = key_text.split("\n")
    assert lines[-1] == ""
    assert lines[0] == "anonsign-secret-key-v1"
    assert lines[1] == "name: alice"
    assert lines[2] == "kdf: argon2id t=1 m=8192 p=1"
    assert re.fullmatch(r"salt: [A-Za-z0-9+/]{22}==", lines[3])
    assert lines[4] == f"public: {key.public_key().to_text()}"
    assert re.fullmatch(r"secret: [A-Za-z0-9+/]{166}==", lines[5])  # 124 bytes
    assert len(lines) == 7


def test_round_trip(key: OrganizerSecretKey, key_text: str) -> None:
    name, opened = decrypt_secret_key(key_text, PASSPHRASE)
    assert name == "alice"
    assert opened.private_bytes_raw() == key.private_bytes_raw()
    assert opened.public_key() == key.public_key()


def test_opened_key_opens_sealed_contacts(key: OrganizerSecretKey, key_text: str) -> None:
    sealed = seal_contact("alice@example.org", [key.public_key()], "p")
    _, opened = decrypt_secret_key(key_text, PASSPHRASE)
    assert open_contact(sealed, opened, "p") == "alice@example.org"


def test_same_key_encrypts_differently_each_time(key: OrganizerSecretKey) -> None:
    assert encrypt_secret_key(key, PASSPHRASE, "a") != encrypt_secret_key(key, PASSPHRASE, "a")


def test_private_bytes_round_trip(key: OrganizerSecretKey) -> None:
    raw = key.private_bytes_raw()
    assert len(raw) == 96
    assert OrganizerSecretKey.from_private_bytes(raw).public_key() == key.public_key()
    with pytest.raises(ValueError, match="96 bytes"):
        OrganizerSecretKey.from_private_bytes(raw[:95])


def test_passphrase_is_nfc_normalized(key: OrganizerSecretKey) -> None:
    composed, decomposed = "caf\u00e9 au lait", "cafe\u0301 au lait"
    text = encrypt_secret_key(key, composed, "alice")
    assert decrypt_secret_key(text, decomposed)[1].public_key() == key.public_key()


def test_crlf_and_bom_are_tolerated(key: OrganizerSecretKey, key_text: str) -> None:
    text = "\ufeff" + key_text.replace("\n", "\r\n")
    assert decrypt_secret_key(text, PASSPHRASE)[1].public_key() == key.public_key()


def test_repr_does_not_reveal_the_secret(key: OrganizerSecretKey) -> None:
    assert repr(key) == f"OrganizerSecretKey(fingerprint='{key.public_key().fingerprint}')"


# --- passphrases ---------------------------------------------------------------------------


def test_wrong_passphrase(key_text: str) -> None:
    with pytest.raises(errors.WrongPassphrase) as info:
        decrypt_secret_key(key_text, PASSPHRASE + " ")
    assert info.value.message == "Wrong passphrase for this key file (or the file was altered)."


def test_empty_passphrase_is_refused_when_encrypting(key: OrganizerSecretKey) -> None:
    with pytest.raises(errors.EmptyPassphrase, match="The passphrase is empty"):
        encrypt_secret_key(key, "", "alice")


def test_empty_passphrase_is_wrong_when_decrypting(key_text: str) -> None:
    with pytest.raises(errors.WrongPassphrase):
        decrypt_secret_key(key_text, "")


def test_bad_name_is_refused_when_encrypting(key: OrganizerSecretKey) -> None:
    with pytest.raises(errors.InvalidKeyName):
        encrypt_secret_key(key, PASSPHRASE, "alice\nsecret: x")


# --- tampering: every line before secret: is authenticated ---------------------------------


def test_kdf_line_edited_does_not_open(key: OrganizerSecretKey) -> None:
    # Written at t=2, edited down to t=1: still above the (cheap) floor, so only the
    # authentication catches it.
    text = encrypt_secret_key_with(key, Argon2Params(2, 8192, 1))
    edited = text.replace("t=2 m=8192", "t=1 m=8192")
    assert edited != text
    with pytest.raises(errors.WrongPassphrase):
        decrypt_secret_key(edited, PASSPHRASE)


def test_name_edited_does_not_open(key_text: str) -> None:
    with pytest.raises(errors.WrongPassphrase):
        decrypt_secret_key(replace_line(key_text, "name", "mallory"), PASSPHRASE)


def test_public_line_replaced_does_not_open(key_text: str, org_keys: Keys) -> None:
    # Swapping in another organizer's public key would make people seal to the wrong key.
    edited = replace_line(key_text, "public", org_keys[1].public_key().to_text())
    with pytest.raises(errors.WrongPassphrase):
        decrypt_secret_key(edited, PASSPHRASE)


def test_salt_edited_does_not_open(key_text: str) -> None:
    edited = replace_line(key_text, "salt", base64.b64encode(bytes(16)).decode())
    with pytest.raises(errors.WrongPassphrase):
        decrypt_secret_key(edited, PASSPHRASE)


def test_secret_edited_does_not_open(key_text: str) -> None:
    value = key_text.split("secret: ")[1].strip()
    raw = bytearray(base64.b64decode(value))
    raw[40] ^= 0x01
    edited = replace_line(key_text, "secret", base64.b64encode(bytes(raw)).decode())
    with pytest.raises(errors.WrongPassphrase):
        decrypt_secret_key(edited, PASSPHRASE)


def test_public_line_that_does_not_match_the_secret(org_keys: Keys) -> None:
    # A file built by something other than anonsign, authentic under its passphrase,
    # whose public line names another key: refused, not trusted.
    salt = secrets.token_bytes(16)
    params = keyfile.KEYFILE_KDF
    lines = [
        labels.SECRET_KEY_FILE_HEADER,
        "name: alice",
        f"kdf: argon2id {params.describe()}",
        f"salt: {base64.b64encode(salt).decode()}",
        f"public: {org_keys[1].public_key().to_text()}",
    ]
    nonce = secrets.token_bytes(12)
    aead_key = keyfile._derive(PASSPHRASE, salt, params)
    ciphertext = ChaCha20Poly1305(aead_key).encrypt(
        nonce, org_keys[0].private_bytes_raw(), keyfile._aad(lines)
    )
    lines.append(f"secret: {base64.b64encode(nonce + ciphertext).decode()}")
    with pytest.raises(errors.KeyFileError, match="does not match its secret key"):
        decrypt_secret_key("\n".join(lines) + "\n", PASSPHRASE)


# --- weak and absurd costs -----------------------------------------------------------------


def test_weak_params_are_refused(key: OrganizerSecretKey, monkeypatch: pytest.MonkeyPatch) -> None:
    weak = encrypt_secret_key_with(key, Argon2Params(1, 4096, 1))
    with pytest.raises(errors.WeakKeyFile) as info:
        decrypt_secret_key(weak, PASSPHRASE)
    assert "weaker than anonsign allows" in info.value.message
    assert isinstance(info.value, errors.KeyFileError)
    monkeypatch.setattr(keyfile, "MIN_KEYFILE_KDF", Argon2Params(2, 8192, 1))
    with pytest.raises(errors.WeakKeyFile):
        decrypt_secret_key(encrypt_secret_key_with(key, Argon2Params(1, 8192, 1)), PASSPHRASE)


def test_fewer_lanes_are_not_weaker(
    key: OrganizerSecretKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyfile, "MIN_KEYFILE_KDF", Argon2Params(1, 8192, 4))
    text = encrypt_secret_key_with(key, Argon2Params(1, 8192, 1))
    assert decrypt_secret_key(text, PASSPHRASE)[0] == "alice"


def test_stronger_params_than_the_default_still_open(key: OrganizerSecretKey) -> None:
    text = encrypt_secret_key_with(key, Argon2Params(2, 16384, 2))
    assert decrypt_secret_key(text, PASSPHRASE)[0] == "alice"


@pytest.mark.parametrize(
    ("kdf_line", "message"),
    [
        ("argon2id t=1 m=8192", "kdf line is damaged"),
        ("argon2i t=1 m=8192 p=1", "kdf line is damaged"),
        ("argon2id t=1 m=8192 p=1 ", "kdf line is damaged"),
        ("argon2id t=-1 m=8192 p=1", "kdf line is damaged"),
        ("argon2id t=1 m=8192 p=0", "kdf line is invalid"),
        ("argon2id t=1 m=9999999999 p=1", "kdf line is invalid"),
        ("argon2id t=65 m=8192 p=1", "asks for 65 passes"),
    ],
)
def test_bad_kdf_lines(key_text: str, kdf_line: str, message: str) -> None:
    with pytest.raises(errors.KeyFileError, match=message):
        decrypt_secret_key(replace_line(key_text, "kdf", kdf_line), PASSPHRASE)


# --- damaged and wrong files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep", "missing"),
    [(1, "name"), (2, "kdf"), (3, "salt"), (4, "public"), (5, "secret")],
)
def test_truncated_file_names_the_missing_line(key_text: str, keep: int, missing: str) -> None:
    truncated = "\n".join(key_text.split("\n")[:keep]) + "\n"
    with pytest.raises(errors.KeyFileError) as info:
        decrypt_secret_key(truncated, PASSPHRASE)
    assert info.value.message == f"This key file is cut short: its {missing} line is missing."


def test_truncated_in_the_middle_of_the_secret(key_text: str) -> None:
    with pytest.raises(errors.KeyFileError, match="secret line is damaged"):
        decrypt_secret_key(key_text.rstrip("\n")[:-10], PASSPHRASE)


def test_truncated_in_the_middle_of_the_public_key(key_text: str) -> None:
    lines = key_text.split("\n")
    lines[4] = lines[4][:200]
    with pytest.raises(errors.KeyFileError, match="public line is damaged"):
        decrypt_secret_key("\n".join(lines), PASSPHRASE)


def test_lines_out_of_order(key_text: str) -> None:
    lines = key_text.split("\n")
    lines[2], lines[3] = lines[3], lines[2]
    with pytest.raises(errors.KeyFileError, match="line 3 should be its kdf line"):
        decrypt_secret_key("\n".join(lines), PASSPHRASE)


def test_extra_lines_are_refused(key_text: str) -> None:
    with pytest.raises(errors.KeyFileError, match="extra lines"):
        decrypt_secret_key(key_text + "comment: hello\n", PASSPHRASE)


def test_bad_salt_and_secret_encodings(key_text: str) -> None:
    with pytest.raises(errors.KeyFileError, match="salt line is damaged"):
        decrypt_secret_key(replace_line(key_text, "salt", "not base64!"), PASSPHRASE)
    with pytest.raises(errors.KeyFileError, match=r"salt line .* \(8 bytes instead of 16\)"):
        decrypt_secret_key(replace_line(key_text, "salt", "AAAAAAAAAAA="), PASSPHRASE)


def test_damaged_name_line(key_text: str) -> None:
    with pytest.raises(errors.KeyFileError, match="name line is damaged"):
        decrypt_secret_key(replace_line(key_text, "name", "../../etc"), PASSPHRASE)


def test_public_key_file_given_instead(key: OrganizerSecretKey) -> None:
    for text in (key.public_key().public_key_file_text("alice"), key.public_key().to_text()):
        with pytest.raises(errors.KeyFileError) as info:
            decrypt_secret_key(text, PASSPHRASE)
        assert info.value.message == (
            "This is an organizer public key (.pub) file; give the secret key file instead."
        )


@pytest.mark.parametrize("text", ["", "\n", "hello\n", "anonsign-secret-key-v2\nname: a\n"])
def test_not_a_secret_key_file(text: str) -> None:
    with pytest.raises(errors.KeyFileError, match="not an anonsign secret key file"):
        decrypt_secret_key(text, PASSPHRASE)


# --- what leaves the offline machine -------------------------------------------------------


def encodings(data: bytes) -> list[bytes]:
    return [
        data,
        data.hex().encode(),
        base64.b64encode(data),
        base64.urlsafe_b64encode(data),
        base64.b64encode(data).rstrip(b"="),
        base64.urlsafe_b64encode(data).rstrip(b"="),
    ]


@pytest.mark.parametrize("part", ["seed", "x25519"])
def test_pub_file_contains_no_secret_bytes(
    key: OrganizerSecretKey, key_text: str, part: str
) -> None:
    raw = key.private_bytes_raw()
    secret = raw[:64] if part == "seed" else raw[64:]
    pub = key.public_key()
    published = pub.public_key_file_text("alice").encode() + pub.raw
    for encoded in encodings(secret):
        assert encoded not in published
        # The secret key file holds it only encrypted.
        assert encoded not in key_text.encode()
    # Also no 16-byte window of the secret, in case of a partial leak.
    for start in range(0, len(secret) - 16 + 1, 8):
        assert secret[start : start + 16] not in pub.raw


# --- files on disk -------------------------------------------------------------------------


def test_load_secret_key(tmp_path: Path, key: OrganizerSecretKey, key_text: str) -> None:
    path = tmp_path / "alice.key"
    path.write_text(key_text, encoding="utf-8")
    name, opened = load_secret_key(path, PASSPHRASE)
    assert (name, opened.public_key()) == ("alice", key.public_key())


def test_load_secret_key_errors_name_the_path(tmp_path: Path, key_text: str) -> None:
    missing = tmp_path / "nobody.key"
    with pytest.raises(errors.KeyFileError) as info:
        load_secret_key(missing, PASSPHRASE)
    assert info.value.message == f"{missing}: no such file."

    path = tmp_path / "alice.key"
    path.write_text(key_text, encoding="utf-8")
    with pytest.raises(errors.WrongPassphrase) as wrong:
        load_secret_key(path, "nope")
    assert wrong.value.message.startswith(f"{path}: Wrong passphrase")

    path.write_text(key_text[:60], encoding="utf-8")
    with pytest.raises(errors.KeyFileError, match=re.escape(f"{path}: This key file is cut short")):
        load_secret_key(path, PASSPHRASE)

    with pytest.raises(errors.KeyFileError, match="is a folder"):
        load_secret_key(tmp_path, PASSPHRASE)

    path.write_bytes(b"\x00\xff\xfe")
    with pytest.raises(errors.KeyFileError, match="not a text file"):
        load_secret_key(path, PASSPHRASE)

    path.write_bytes(b"a" * (keyfile.MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(errors.KeyFileError, match="far too large"):
        load_secret_key(path, PASSPHRASE)


def test_weak_file_on_disk_keeps_its_error_type(tmp_path: Path, key: OrganizerSecretKey) -> None:
    path = tmp_path / "weak.key"
    path.write_text(encrypt_secret_key_with(key, Argon2Params(1, 4096, 1)), encoding="utf-8")
    with pytest.raises(errors.WeakKeyFile, match=re.escape(str(path))):
        load_secret_key(path, PASSPHRASE)
