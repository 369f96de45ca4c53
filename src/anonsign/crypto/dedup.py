"""Dedup keys: how one person signing a petition twice is noticed without storing who.

This module owns the dedup-key construction and the random per-petition pepper and
per-instance salt it uses::

    dedup_key = Argon2id(
        secret = HMAC-SHA256(pepper, DEDUP_HMAC || 0x00 || kind || 0x00 || normalized),
        salt   = salt,
        params = params,
        length = 32,
    )

The HMAC step means a dedup key cannot be computed, or a guessed identifier checked,
without the petition's pepper, which lives only wrapped under the server master key and
is destroyed when the petition closes; the Argon2id step makes every guess expensive
for whoever does hold the pepper. It must not normalize identifiers (the domain layer
does), store anything, or choose Argon2 parameters: callers pass them.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes, hmac

from anonsign.crypto import labels
from anonsign.crypto.kdf import Argon2Params, argon2id

SALT_SIZE = 16
PEPPER_SIZE = 32
DEDUP_KEY_SIZE = 32


def new_salt() -> bytes:
    """A fresh random Argon2 salt for dedup keys."""
    return secrets.token_bytes(SALT_SIZE)


def new_pepper() -> bytes:
    """A fresh random pepper for one petition."""
    return secrets.token_bytes(PEPPER_SIZE)


def dedup_key(
    *, pepper: bytes, salt: bytes, kind: str, normalized: str, params: Argon2Params
) -> bytes:
    """The 32-byte dedup key of one normalized identifier of one kind (e.g. ``email``).

    Wrong pepper or salt sizes, and a kind that is empty or contains NUL, are programming
    errors (``ValueError``): the NUL separates kind from identifier, so a kind containing
    one could collide with another (kind, identifier) pair.
    """
    if len(pepper) != PEPPER_SIZE:
        raise ValueError(f"pepper must be {PEPPER_SIZE} bytes, got {len(pepper)}")
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes, got {len(salt)}")
    if not kind or "\x00" in kind:
        raise ValueError("identifier kind must be non-empty and contain no NUL")
    mac = hmac.HMAC(pepper, hashes.SHA256())
    mac.update(labels.DEDUP_HMAC + b"\x00" + kind.encode("utf-8") + b"\x00")
    # The identifier is the last field, so it needs no terminator of its own.
    mac.update(normalized.encode("utf-8"))
    return argon2id(mac.finalize(), salt, params, DEDUP_KEY_SIZE)
