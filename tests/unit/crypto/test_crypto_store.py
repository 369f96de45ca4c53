"""The store key's derivation (known answer), its pragma, and the sealed server keys."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from anonsign import errors
from anonsign.crypto import labels, lock
from anonsign.crypto.master import ServerKeys
from anonsign.crypto.store import attach_statement, key_pragma, sqlcipher_key

STORE_KEY = bytes(range(32))
#: HKDF-SHA256(ikm=00..1f, salt=none, info="anonsign/store/sqlcipher-key/v1", L=32),
#: pinned as text so that a changed label or algorithm cannot pass by changing both sides.
KNOWN_ANSWER = "93718a16d9500a1342274fd3d525f4d9d8c89bb43900da279346ba215baac2b2"


def _rfc5869(ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF written from RFC 5869 with hmac alone, to check the one pyca computes."""
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()  # no salt: HashLen zeros
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def test_sqlcipher_key_known_answer() -> None:
    assert sqlcipher_key(STORE_KEY).hex() == KNOWN_ANSWER


def test_sqlcipher_key_is_rfc5869_hkdf_under_its_own_label() -> None:
    assert labels.STORE_SQLCIPHER_KEY == b"anonsign/store/sqlcipher-key/v1"
    assert sqlcipher_key(STORE_KEY) == _rfc5869(STORE_KEY, labels.STORE_SQLCIPHER_KEY, 32)


def test_pragma_is_a_raw_key_in_hex_only() -> None:
    pragma = key_pragma(STORE_KEY)
    assert re.fullmatch(r"PRAGMA key = \"x'[0-9a-f]{64}'\"", pragma)
    assert STORE_KEY.hex() not in pragma  # the derived key, never the stored one
    statement = attach_statement("/srv/it's.db", STORE_KEY, "encrypted")
    assert "'/srv/it''s.db'" in statement


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_store_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        sqlcipher_key(bytes(size))


def test_server_keys_round_trip_and_never_print() -> None:
    keys = ServerKeys.generate()
    assert ServerKeys.from_bytes(keys.to_bytes()) == keys
    assert keys.master.hex() not in repr(keys)
    assert "secret" in repr(keys)
    rotated = keys.rotated()
    assert rotated.store == keys.store
    assert rotated.master != keys.master
    legacy = ServerKeys.from_bytes(keys.master)
    assert legacy.store is None
    with pytest.raises(ValueError, match="never written"):
        legacy.to_bytes()
    with pytest.raises(ValueError, match="64 bytes"):
        ServerKeys.from_bytes(bytes(40))


def test_sealed_server_keys_v2_round_trip_and_failures() -> None:
    keys = ServerKeys.generate()
    text = lock.seal_server_keys(keys, "correct horse battery")
    assert text.startswith(labels.SEALED_SERVER_KEYS_HEADER + "\n")
    assert lock.open_server_keys(text, "correct horse battery") == keys
    with pytest.raises(errors.WrongPassphrase):
        lock.open_server_keys(text, "wrong horse battery")
    # The header is bound into the AEAD: relabelling v2 as v1 does not open.
    relabelled = text.replace(labels.SEALED_SERVER_KEYS_HEADER, labels.SEALED_MASTER_KEY_HEADER)
    with pytest.raises(lock.SealedMasterKeyError):
        lock.open_server_keys(relabelled, "correct horse battery")
