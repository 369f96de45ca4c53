"""The server master key, sealed under the operator's unlock passphrase.

The master key wraps every open petition's pepper, so it must not sit in clear on the
server's persistent disk: a seized, powered-off disk would then test identifiers. The
disk holds only this sealed form; after each boot ``anonsign unlock`` opens it with the
passphrase and writes the key to memory-backed storage (tmpfs) for the service.

Format v1 (UTF-8 text, four lines)::

    anonsign-sealed-master-key-v1
    kdf: argon2id t=3 m=262144 p=4
    salt: <base64, 16 bytes>
    sealed: <base64 of nonce (12) || ChaCha20-Poly1305 ciphertext (32 + 16)>

    key = Argon2id(NFC(passphrase), salt, t, m, p, 32 bytes)
    aad = SEALED_MASTER_KEY_AEAD || 0x00 || the three lines before "sealed:" joined by "\\n"

This module neither reads files nor asks for passphrases (the CLI does both).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import unicodedata

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from anonsign import errors
from anonsign.crypto import labels
from anonsign.crypto.kdf import Argon2Params, argon2id
from anonsign.crypto.master import MASTER_KEY_SIZE

#: Cost when sealing; an unlock happens once per boot, so it can be slow to guess.
LOCK_KDF = Argon2Params(time_cost=3, memory_kib=262144, parallelism=4)
#: The weakest cost accepted when opening (a test fixture lowers both).
MIN_LOCK_KDF = Argon2Params(time_cost=3, memory_kib=262144, parallelism=4)

SALT_SIZE = 16
NONCE_SIZE = 12
SEALED_SIZE = NONCE_SIZE + MASTER_KEY_SIZE + 16
_KDF = re.compile(r"kdf: argon2id t=([0-9]{1,3}) m=([0-9]{1,10}) p=([0-9]{1,2})")


class SealedMasterKeyError(errors.AnonsignError):
    """The sealed master key file is damaged or is not an anonsign sealed master key."""


def _derive(passphrase: str, salt: bytes, params: Argon2Params) -> bytes:
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return argon2id(secret, salt, params, 32)


def _aad(lines: list[str]) -> bytes:
    return labels.SEALED_MASTER_KEY_AEAD + b"\x00" + "\n".join(lines).encode("utf-8")


def seal_master_key(master_key: bytes, passphrase: str) -> str:
    if len(master_key) != MASTER_KEY_SIZE:
        raise ValueError("the master key must be 32 bytes")
    if not passphrase:
        raise errors.EmptyPassphrase()
    salt = secrets.token_bytes(SALT_SIZE)
    lines = [
        labels.SEALED_MASTER_KEY_HEADER,
        f"kdf: argon2id {LOCK_KDF.describe()}",
        f"salt: {base64.b64encode(salt).decode('ascii')}",
    ]
    nonce = secrets.token_bytes(NONCE_SIZE)
    sealed = ChaCha20Poly1305(_derive(passphrase, salt, LOCK_KDF)).encrypt(
        nonce, master_key, _aad(lines)
    )
    lines.append(f"sealed: {base64.b64encode(nonce + sealed).decode('ascii')}")
    return "\n".join(lines) + "\n"


def open_master_key(text: str, passphrase: str) -> bytes:
    """The master key; WrongPassphrase if the passphrase (or the file) is wrong."""
    lines = text.strip("\n").split("\n")
    if len(lines) != 4 or lines[0] != labels.SEALED_MASTER_KEY_HEADER:
        raise SealedMasterKeyError()
    match = _KDF.fullmatch(lines[1])
    if not match or not lines[2].startswith("salt: ") or not lines[3].startswith("sealed: "):
        raise SealedMasterKeyError()
    try:
        params = Argon2Params(*(int(g) for g in match.groups()))
        salt = base64.b64decode(lines[2].removeprefix("salt: "), validate=True)
        sealed = base64.b64decode(lines[3].removeprefix("sealed: "), validate=True)
    except (errors.ConfigError, binascii.Error, ValueError):
        raise SealedMasterKeyError() from None
    if len(salt) != SALT_SIZE or len(sealed) != SEALED_SIZE:
        raise SealedMasterKeyError()
    if params.time_cost < MIN_LOCK_KDF.time_cost or params.memory_kib < MIN_LOCK_KDF.memory_kib:
        raise SealedMasterKeyError(
            "The sealed master key's protection is weaker than anonsign allows; it was altered."
        )
    if not passphrase:
        raise errors.WrongPassphrase("Wrong unlock passphrase.")
    try:
        return ChaCha20Poly1305(_derive(passphrase, salt, params)).decrypt(
            sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _aad(lines[:3])
        )
    except InvalidTag:
        raise errors.WrongPassphrase(
            "Wrong unlock passphrase (or the sealed key was altered)."
        ) from None
