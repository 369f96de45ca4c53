"""Pepper wrapping under the server master key: round trip and every way it must fail."""

from __future__ import annotations

import pytest

from anonsign import errors
from anonsign.crypto import master
from anonsign.crypto.dedup import new_pepper

PETITION = "save-the-river"


def test_wrap_unwrap_round_trip() -> None:
    key, pepper = master.new_master_key(), new_pepper()
    wrapped = master.wrap_pepper(key, PETITION, pepper)
    assert len(wrapped) == master.WRAPPED_PEPPER_SIZE == 60
    assert pepper not in wrapped
    assert master.unwrap_pepper(key, PETITION, wrapped) == pepper


def test_wrapping_twice_uses_fresh_nonces() -> None:
    key, pepper = master.new_master_key(), new_pepper()
    assert master.wrap_pepper(key, PETITION, pepper) != master.wrap_pepper(key, PETITION, pepper)


def test_wrong_master_key_is_master_key_mismatch() -> None:
    wrapped = master.wrap_pepper(master.new_master_key(), PETITION, new_pepper())
    with pytest.raises(errors.MasterKeyMismatch, match="ANONSIGN_INSTANCE"):
        master.unwrap_pepper(master.new_master_key(), PETITION, wrapped)


def test_wrong_petition_id_does_not_open() -> None:
    key = master.new_master_key()
    wrapped = master.wrap_pepper(key, PETITION, new_pepper())
    with pytest.raises(errors.MasterKeyMismatch):
        master.unwrap_pepper(key, "save-the-river2", wrapped)


@pytest.mark.parametrize("index", [0, 11, 12, 43, 44, 59])
def test_altered_byte_does_not_open(index: int) -> None:
    key = master.new_master_key()
    wrapped = bytearray(master.wrap_pepper(key, PETITION, new_pepper()))
    wrapped[index] ^= 0x01
    with pytest.raises(errors.MasterKeyMismatch):
        master.unwrap_pepper(key, PETITION, bytes(wrapped))


@pytest.mark.parametrize("size", [0, 12, 59, 61])
def test_wrong_length_does_not_open(size: int) -> None:
    key = master.new_master_key()
    wrapped = master.wrap_pepper(key, PETITION, new_pepper())
    blob = (wrapped + bytes(8))[:size]
    with pytest.raises(errors.MasterKeyMismatch):
        master.unwrap_pepper(key, PETITION, blob)


def test_programming_errors_are_value_errors() -> None:
    key = master.new_master_key()
    assert len(key) == master.MASTER_KEY_SIZE == 32
    with pytest.raises(ValueError, match="master key"):
        master.wrap_pepper(key[:31], PETITION, new_pepper())
    with pytest.raises(ValueError, match="master key"):
        master.unwrap_pepper(key + b"\x00", PETITION, bytes(60))
    with pytest.raises(ValueError, match="pepper"):
        master.wrap_pepper(key, PETITION, bytes(16))
    with pytest.raises(ValueError, match="petition id"):
        master.wrap_pepper(key, "", new_pepper())
    with pytest.raises(ValueError, match="petition id"):
        master.wrap_pepper(key, "a\x00b", new_pepper())
