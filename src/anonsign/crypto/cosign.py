"""Witness cosignatures: C2SP tlog-cosignature v1 with Ed25519 (signature type 0x04).

A witness states, with a timestamp, that a checkpoint is the largest consistent tree it
has seen for the log named by the checkpoint's origin (https://c2sp.org/tlog-cosignature)::

    signed message  = "cosignature/v1\\n" || "time " || decimal(timestamp) || "\\n" || text
    signature line  = "\u2014 " || name || " " || base64(key ID || u64 BE timestamp || sig64)
    key ID          = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]
    verifier key    = name || "+" || key ID as 8 hex digits || "+" || base64(0x04 || key)

``text`` is the checkpoint body with its final newline, without signature lines. The name
is not signed (only the key ID commits to it), which is why the spec forbids one key for
two witnesses. A cosignature line is a signed-note signature line, so a checkpoint with
its log signature and its cosignatures is still one C2SP signed note, which
:class:`anonsign.crypto.notes.NoteVerifier` opens (ignoring the cosignatures) and
:meth:`CosignatureVerifier.timestamp_in` checks.

This module is the only one that makes or checks a cosignature; it imports no web
framework and no database layer (auditors run it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from anonsign.crypto.notes import (
    SIGNATURE_PREFIX,
    InvalidLogKey,
    NoteError,
    check_key_id,
    parse_note,
    split_verifier_key,
    validate_key_name,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "COSIGNATURE_HEADER",
    "BadCosignature",
    "CosignatureVerifier",
    "NotCosigned",
    "WitnessSigner",
    "cosignature_key_id",
    "cosigned_message",
]

#: Signature type byte of an Ed25519 cosignature/v1 (tlog-cosignature, "Format").
ALG_COSIGNATURE_V1 = 0x04
#: The first line of every signed message: domain separation from the log's own
#: signatures (type 0x01 signs the bare text).
COSIGNATURE_HEADER = "cosignature/v1\n"
#: Timestamps are below 2^63 (the spec).
MAX_TIMESTAMP = (1 << 63) - 1

_KEY_ID_SIZE = 4
_TIMESTAMP_SIZE = 8
_SIGNATURE_SIZE = 64


class NotCosigned(NoteError):
    """This checkpoint carries no cosignature by the given witness."""


class BadCosignature(NoteError):
    """A cosignature under this witness's name and key ID does not verify."""


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x04 || public key)[:4]."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key)
    return digest.finalize()[:_KEY_ID_SIZE]


def cosigned_message(text: str, timestamp: int) -> bytes:
    """The bytes a witness signs for the checkpoint body ``text`` at ``timestamp``."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"a cosignature timestamp is 0 to 2^63-1, not {timestamp}")
    if not text.endswith("\n"):
        raise ValueError("a checkpoint body ends with a newline")
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness as a log client trusts it: its name and Ed25519 public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if len(self.public_key) != 32:
            raise InvalidLogKey(f"An Ed25519 public key is 32 bytes, got {len(self.public_key)}.")

    @classmethod
    def from_verifier_key(cls, text: str) -> CosignatureVerifier:
        """Parse ``<name>+<8 hex key ID>+<base64(0x04 || public key)>``."""
        name, id_hex, public_key = split_verifier_key(
            text, ALG_COSIGNATURE_V1, "Ed25519 cosignature/v1"
        )
        verifier = cls(name, public_key)
        check_key_id(id_hex, verifier.key_id)
        return verifier

    @property
    def key_id(self) -> bytes:
        return cosignature_key_id(self.name, self.public_key)

    def verifier_key(self) -> str:
        encoded = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def timestamp_in(self, note: str) -> int:
        """The timestamp of this witness's cosignature on the signed note ``note``.

        Lines by other keys are ignored. Every line under this witness's name and key ID
        must verify (as for a log signature); with none, :class:`NotCosigned`.
        """
        parsed = parse_note(note)
        own = [s for s in parsed.signatures if s.name == self.name and s.key_id == self.key_id]
        if not own:
            raise NotCosigned(f"The checkpoint carries no cosignature by {self.name}.")
        public = Ed25519PublicKey.from_public_bytes(self.public_key)
        stamps = []
        for line in own:
            blob = line.signature
            if len(blob) != _TIMESTAMP_SIZE + _SIGNATURE_SIZE:
                raise BadCosignature(
                    f"The cosignature by {self.name} is {len(blob) + _KEY_ID_SIZE} bytes, "
                    f"expected {_KEY_ID_SIZE + _TIMESTAMP_SIZE + _SIGNATURE_SIZE}."
                )
            timestamp = int.from_bytes(blob[:_TIMESTAMP_SIZE], "big")
            try:
                message = cosigned_message(parsed.text, timestamp)
                public.verify(blob[_TIMESTAMP_SIZE:], message)
            except (InvalidSignature, ValueError):
                raise BadCosignature(
                    f"The cosignature by {self.name} does not verify: the checkpoint or the "
                    "cosignature was altered."
                ) from None
            stamps.append(timestamp)
        return max(stamps)


class WitnessSigner:
    """A witness's Ed25519 key and name; ``repr`` never shows the private key."""

    __slots__ = ("_private", "_verifier", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = validate_key_name(name)
        self._private = private_key
        self._verifier = CosignatureVerifier(self.name, private_key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, name: str) -> WitnessSigner:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, name: str, raw: bytes) -> WitnessSigner:
        if len(raw) != 32:
            raise InvalidLogKey(
                f"This witness key is {len(raw)} bytes long, expected 32 (an Ed25519 "
                "private key); the key file is damaged."
            )
        return cls(name, Ed25519PrivateKey.from_private_bytes(raw))

    def to_private_bytes(self) -> bytes:
        return self._private.private_bytes_raw()

    def verifier(self) -> CosignatureVerifier:
        return self._verifier

    def verifier_key(self) -> str:
        return self._verifier.verifier_key()

    def cosign(self, text: str, timestamp: int) -> str:
        """The cosignature line (ending in a newline) on the checkpoint body ``text``."""
        signature = self._private.sign(cosigned_message(text, timestamp))
        blob = self._verifier.key_id + timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"

    def __repr__(self) -> str:
        return f"WitnessSigner(name={self.name!r}, key_id={self._verifier.key_id.hex()})"
