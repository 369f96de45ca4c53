"""The server master key and the wrapping of each petition's pepper under it.

This module owns the wrapped-pepper format (v1, 60 bytes)::

    nonce (12 random bytes)
    || ChaCha20-Poly1305(master_key).encrypt(nonce, pepper (32), aad) (32 + 16-byte tag)

    aad = PEPPER_WRAP || 0x00 || petition_id (UTF-8)

Binding the petition id means a wrapped pepper copied onto another petition's row does
not open there. The master key is handled here as bytes only: reading, writing and
permissions of the master-key file belong to the instance/config code, never here.
Random nonces are safe because a master key wraps one pepper per petition, far below
ChaCha20-Poly1305's random-nonce bound.

The server's two secrets travel together as :class:`ServerKeys` (v2, 64 bytes: the
master key, then the store key). They are kept apart because they live differently: the
**master key** is replaced at every petition close (SECURITY.md, "close reaches every
process"), so a copy taken earlier, or held by a process that outlived the close, opens
no closed petition's pepper; the **store key** (see ``crypto.store``) encrypts the
SQLite store and stays for the instance's life, because changing it means rewriting
every page under running readers. v1 was the master key alone (32 bytes), from before
the store was encrypted; ``anonsign init`` converts such an instance.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from anonsign import errors
from anonsign.crypto import labels
from anonsign.crypto._context import petition_context
from anonsign.crypto.dedup import PEPPER_SIZE

MASTER_KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
WRAPPED_PEPPER_SIZE = NONCE_SIZE + PEPPER_SIZE + TAG_SIZE


STORE_KEY_SIZE = 32
SERVER_KEYS_SIZE = MASTER_KEY_SIZE + STORE_KEY_SIZE


@dataclass(frozen=True, repr=False)
class ServerKeys:
    """The master key (wraps peppers; rotates at close) and the store key (never rotates).

    ``store`` is None only for an instance made before the store was encrypted (v1).
    ``repr`` is off so that a traceback or a debugger never prints either key.
    """

    master: bytes
    store: bytes | None

    @classmethod
    def generate(cls) -> ServerKeys:
        return cls(new_master_key(), secrets.token_bytes(STORE_KEY_SIZE))

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerKeys:
        """Parse v2 (64 bytes) or v1 (32 bytes: no store key); ValueError otherwise."""
        if len(data) == SERVER_KEYS_SIZE:
            return cls(data[:MASTER_KEY_SIZE], data[MASTER_KEY_SIZE:])
        if len(data) == MASTER_KEY_SIZE:
            return cls(data, None)
        raise ValueError(f"server keys are {SERVER_KEYS_SIZE} bytes, got {len(data)}")

    def to_bytes(self) -> bytes:
        if self.store is None:
            raise ValueError("a v1 key set (no store key) is never written again")
        return self.master + self.store

    def rotated(self) -> ServerKeys:
        """A new master key beside the same store key (what closing a petition does)."""
        return ServerKeys(new_master_key(), self.store)

    def with_store_key(self) -> ServerKeys:
        """The same master key with a new store key (converting a v1 instance)."""
        return ServerKeys(self.master, secrets.token_bytes(STORE_KEY_SIZE))

    def __repr__(self) -> str:
        return "ServerKeys(<secret>)"


def new_master_key() -> bytes:
    """A fresh random server master key."""
    return secrets.token_bytes(MASTER_KEY_SIZE)


def _check_master_key(master_key: bytes) -> None:
    # The caller loads and checks the key file; a wrong size reaching here is a bug.
    if len(master_key) != MASTER_KEY_SIZE:
        raise ValueError(f"master key must be {MASTER_KEY_SIZE} bytes, got {len(master_key)}")


def wrap_pepper(master_key: bytes, petition_id: str, pepper: bytes) -> bytes:
    """Encrypt one petition's pepper under the master key (format in the module docstring)."""
    _check_master_key(master_key)
    if len(pepper) != PEPPER_SIZE:
        raise ValueError(f"pepper must be {PEPPER_SIZE} bytes, got {len(pepper)}")
    nonce = secrets.token_bytes(NONCE_SIZE)
    aad = petition_context(labels.PEPPER_WRAP, petition_id)
    return nonce + ChaCha20Poly1305(master_key).encrypt(nonce, pepper, aad)


def unwrap_pepper(master_key: bytes, petition_id: str, wrapped: bytes) -> bytes:
    """Open a wrapped pepper, or raise :class:`errors.MasterKeyMismatch`.

    A wrong-length or altered blob is reported the same way as a wrong key: from here
    the three cannot be told apart, and the likely cause is an operator pointing the
    server at another instance's master key.
    """
    _check_master_key(master_key)
    aad = petition_context(labels.PEPPER_WRAP, petition_id)
    if len(wrapped) != WRAPPED_PEPPER_SIZE:
        raise errors.MasterKeyMismatch()
    nonce, ciphertext = wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:]
    try:
        return ChaCha20Poly1305(master_key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise errors.MasterKeyMismatch() from None
