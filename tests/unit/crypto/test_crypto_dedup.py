"""Dedup keys: pinned known answers, the construction, and its domain separation."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, hmac

from anonsign.crypto import dedup, labels
from anonsign.crypto.kdf import Argon2Params, argon2id

PEPPER = bytes(range(32))
SALT = bytes(range(16))
PARAMS = Argon2Params(time_cost=2, memory_kib=1024, parallelism=1)

# Computed once with this implementation and pinned, so any change to the label, the
# separators, the HMAC or the Argon2id call shows up here: every stored dedup key of a
# running petition depends on these bytes staying the same.
KNOWN_ANSWERS = [
    (
        "email",
        "alice@example.org",
        "6f1fad72b8df52674de63fb674f0e0235d42b2bf27861c40fd178ac2c1536ba0",
    ),
    ("phone", "+33612345678", "e0caf81a4f52ca8ecc360e910d933c8ed11679ee86a4f75458e3409c06095075"),
]


def key(
    *,
    pepper: bytes = PEPPER,
    salt: bytes = SALT,
    kind: str = "email",
    normalized: str = "alice@example.org",
    params: Argon2Params = PARAMS,
) -> bytes:
    return dedup.dedup_key(
        pepper=pepper, salt=salt, kind=kind, normalized=normalized, params=params
    )


@pytest.mark.parametrize(("kind", "normalized", "expected"), KNOWN_ANSWERS)
def test_dedup_key_known_answer(kind: str, normalized: str, expected: str) -> None:
    assert key(kind=kind, normalized=normalized).hex() == expected


def test_dedup_key_is_hmac_then_argon2id() -> None:
    mac = hmac.HMAC(PEPPER, hashes.SHA256())
    mac.update(labels.DEDUP_HMAC + b"\x00email\x00alice@example.org")
    assert key() == argon2id(mac.finalize(), SALT, PARAMS, 32)


def test_dedup_key_is_deterministic_and_32_bytes() -> None:
    assert key() == key()
    assert len(key()) == dedup.DEDUP_KEY_SIZE == 32


def test_dedup_key_changes_with_every_input() -> None:
    base = key()
    assert key(pepper=bytes(31) + b"\x01") != base
    assert key(salt=bytes(16)) != base
    assert key(kind="phone") != base
    assert key(normalized="alice@example.com") != base
    assert key(params=Argon2Params(3, 1024, 1)) != base


def test_kind_and_identifier_cannot_trade_bytes() -> None:
    # Without the separator, ("email", "x") and ("emai", "lx") would feed the same bytes.
    assert key(kind="email", normalized="x") != key(kind="emai", normalized="lx")


def test_kind_with_separator_or_empty_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        key(kind="email\x00")
    with pytest.raises(ValueError, match="kind"):
        key(kind="")


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_wrong_pepper_size_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="pepper must be 32 bytes"):
        key(pepper=bytes(size))


@pytest.mark.parametrize("size", [0, 8, 15, 17, 32])
def test_wrong_salt_size_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="salt must be 16 bytes"):
        key(salt=bytes(size))


def test_new_salt_and_pepper_are_random_and_sized() -> None:
    assert len(dedup.new_salt()) == dedup.SALT_SIZE == 16
    assert len(dedup.new_pepper()) == dedup.PEPPER_SIZE == 32
    assert dedup.new_salt() != dedup.new_salt()
    assert dedup.new_pepper() != dedup.new_pepper()
