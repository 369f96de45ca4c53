"""The server keys, sealed under the operator's unlock passphrase.

The master key wraps every open petition's pepper and the store key encrypts the
database, so neither may sit in clear on the server's persistent disk: a seized,
powered-off disk would then read the store and test identifiers. The disk holds only
this sealed form; after each boot ``anonsign unlock`` opens it with the passphrase and
writes the keys to memory-backed storage (tmpfs) for the service.

Format v2 (UTF-8 text, four lines)::

    anonsign-sealed-master-key-v2
    kdf: argon2id t=3 m=262144 p=4
    salt: <base64, 16 bytes>
    sealed: <base64 of nonce (12) || ChaCha20-Poly1305 ciphertext (64 + 16)>

    plaintext = master key (32) || store key (32)        (crypto.master.ServerKeys)
    key = Argon2id(NFC(passphrase), salt, t, m, p, 32 bytes)
    aad = SEALED_SERVER_KEYS_AEAD || 0x00 || the three lines before "sealed:" joined by "\\n"

v1 (header ``anonsign-sealed-master-key-v1``, label ``SEALED_MASTER_KEY_AEAD``, a
32-byte plaintext: the master key alone) is still opened, so that ``anonsign init`` can
convert an instance made before the store was encrypted; it is never written.

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
from anonsign.crypto.master import MASTER_KEY_SIZE, SERVER_KEYS_SIZE, ServerKeys

#: Cost when sealing; an unlock happens once per boot, so it can be slow to guess.
LOCK_KDF = Argon2Params(time_cost=3, memory_kib=262144, parallelism=4)
#: The weakest cost accepted when opening (a test fixture lowers both).
MIN_LOCK_KDF = Argon2Params(time_cost=3, memory_kib=262144, parallelism=4)

SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
#: Sealed plaintext size by header: v2 (both keys) and v1 (master key alone).
_VERSIONS = {
    labels.SEALED_SERVER_KEYS_HEADER: (labels.SEALED_SERVER_KEYS_AEAD, SERVER_KEYS_SIZE),
    labels.SEALED_MASTER_KEY_HEADER: (labels.SEALED_MASTER_KEY_AEAD, MASTER_KEY_SIZE),
}
_KDF = re.compile(r"kdf: argon2id t=([0-9]{1,3}) m=([0-9]{1,10}) p=([0-9]{1,2})")


class SealedMasterKeyError(errors.AnonsignError):
    """The sealed master key file is damaged or is not an anonsign sealed master key."""


def _derive(passphrase: str, salt: bytes, params: Argon2Params) -> bytes:
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return argon2id(secret, salt, params, 32)


def _aad(label: bytes, lines: list[str]) -> bytes:
    return label + b"\x00" + "\n".join(lines).encode("utf-8")


def seal_server_keys(keys: ServerKeys, passphrase: str) -> str:
    """The v2 sealed text of ``keys`` under ``passphrase`` (fresh salt and nonce)."""
    plaintext = keys.to_bytes()
    if not passphrase:
        raise errors.EmptyPassphrase()
    salt = secrets.token_bytes(SALT_SIZE)
    lines = [
        labels.SEALED_SERVER_KEYS_HEADER,
        f"kdf: argon2id {LOCK_KDF.describe()}",
        f"salt: {base64.b64encode(salt).decode('ascii')}",
    ]
    nonce = secrets.token_bytes(NONCE_SIZE)
    sealed = ChaCha20Poly1305(_derive(passphrase, salt, LOCK_KDF)).encrypt(
        nonce, plaintext, _aad(labels.SEALED_SERVER_KEYS_AEAD, lines)
    )
    lines.append(f"sealed: {base64.b64encode(nonce + sealed).decode('ascii')}")
    return "\n".join(lines) + "\n"


def open_server_keys(text: str, passphrase: str) -> ServerKeys:
    """The server keys (v1: no store key); WrongPassphrase if the passphrase is wrong."""
    lines = text.strip("\n").split("\n")
    if len(lines) != 4 or lines[0] not in _VERSIONS:
        raise SealedMasterKeyError()
    label, size = _VERSIONS[lines[0]]
    match = _KDF.fullmatch(lines[1])
    if not match or not lines[2].startswith("salt: ") or not lines[3].startswith("sealed: "):
        raise SealedMasterKeyError()
    try:
        params = Argon2Params(*(int(g) for g in match.groups()))
        salt = base64.b64decode(lines[2].removeprefix("salt: "), validate=True)
        sealed = base64.b64decode(lines[3].removeprefix("sealed: "), validate=True)
    except (errors.ConfigError, binascii.Error, ValueError):
        raise SealedMasterKeyError() from None
    if len(salt) != SALT_SIZE or len(sealed) != NONCE_SIZE + size + TAG_SIZE:
        raise SealedMasterKeyError()
    if params.time_cost < MIN_LOCK_KDF.time_cost or params.memory_kib < MIN_LOCK_KDF.memory_kib:
        raise SealedMasterKeyError(
            "The sealed master key's protection is weaker than anonsign allows; it was altered."
        )
    if not passphrase:
        raise errors.WrongPassphrase("Wrong unlock passphrase.")
    try:
        plaintext = ChaCha20Poly1305(_derive(passphrase, salt, params)).decrypt(
            sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _aad(label, lines[:3])
        )
    except InvalidTag:
        raise errors.WrongPassphrase(
            "Wrong unlock passphrase (or the sealed key was altered)."
        ) from None
    return ServerKeys.from_bytes(plaintext)
