"""Organizer public keys: their bytes, their one-line text form and the ``.pub`` file.

An organizer public key is ML-KEM-768 (1184 bytes) followed by X25519 (32 bytes), the
two halves of the HPKE hybrid KEM ``MLKEM768-X25519``: a sealed contact stays closed
while either half holds, so contacts recorded today do not open to a future quantum
computer that breaks X25519 alone. Text form (v1)::

    anonsign-organizer-v1:<unpadded base64url of the 1216 raw bytes>

Its key id is ``SHA-256(ORGANIZER_KEY_ID || raw)[:16]``; the fingerprint people compare
is that id in hex, in groups of four.

The web process imports this module to seal contacts, so it must hold PUBLIC keys only:
it must never import ``keyfile`` or ``unseal``, never parse a secret key file (it only
recognises one, to refuse it), and never gain any way to open a sealed contact.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from anonsign import errors
from anonsign.crypto import labels

MLKEM768_PUBLIC_SIZE = 1184
X25519_PUBLIC_SIZE = 32
PUBLIC_KEY_SIZE = MLKEM768_PUBLIC_SIZE + X25519_PUBLIC_SIZE
KEY_ID_SIZE = 16

#: A .pub file is a few hundred bytes of comments and one 1,650-character line; anything
#: far larger is the wrong file, and refusing it early avoids reading a disk image.
MAX_KEY_FILE_BYTES = 64 * 1024

_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PREFIX_FAMILY = "anonsign-organizer-"


def validate_key_name(name: str) -> str:
    """Return ``name`` if it is a valid key name, else raise :class:`errors.InvalidKeyName`.

    Names become file names (``NAME.pub``) and appear in key files and CLI output, so
    they are kept to characters that are safe in all three and on every filesystem.
    """
    if not _KEY_NAME.fullmatch(name):
        raise errors.InvalidKeyName()
    return name


@dataclass(frozen=True, repr=False)
class OrganizerPublicKey:
    """One organizer's public key: ML-KEM-768 public bytes || X25519 public bytes."""

    raw: bytes

    def __post_init__(self) -> None:
        # Checked on construction so no code path can seal to a key that does not load.
        if not isinstance(self.raw, bytes):
            raise TypeError("OrganizerPublicKey.raw must be bytes")
        if len(self.raw) != PUBLIC_KEY_SIZE:
            raise errors.KeyFileError(
                f"This organizer public key has the wrong length ({len(self.raw)} bytes "
                f"instead of {PUBLIC_KEY_SIZE}); it was cut short or damaged."
            )
        try:
            mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:MLKEM768_PUBLIC_SIZE])
        except ValueError:
            raise errors.KeyFileError(
                "This organizer public key is damaged (its ML-KEM part is not valid)."
            ) from None
        x25519_public = x25519.X25519PublicKey.from_public_bytes(self.raw[MLKEM768_PUBLIC_SIZE:])
        # Any 32 bytes load as an X25519 key, but a low-order point yields an all-zero
        # shared secret and silently removes the X25519 half of the hybrid; the exchange
        # refuses exactly those points.
        try:
            x25519.X25519PrivateKey.generate().exchange(x25519_public)
        except ValueError:
            raise errors.KeyFileError(
                "This organizer public key is damaged (its X25519 part is not valid)."
            ) from None

    def __repr__(self) -> str:
        return f"OrganizerPublicKey(fingerprint={self.fingerprint!r})"

    @property
    def key_id(self) -> bytes:
        """16 bytes naming this key inside sealed contacts."""
        digest = hashes.Hash(hashes.SHA256())
        digest.update(labels.ORGANIZER_KEY_ID + self.raw)
        return digest.finalize()[:KEY_ID_SIZE]

    @property
    def fingerprint(self) -> str:
        """The key id as lowercase hex in groups of four, for people to compare aloud."""
        hex_id = self.key_id.hex()
        return " ".join(hex_id[i : i + 4] for i in range(0, len(hex_id), 4))

    def hpke_key(self) -> hpke.MLKEM768X25519PublicKey:
        """The HPKE recipient key for the ``MLKEM768-X25519`` KEM."""
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:MLKEM768_PUBLIC_SIZE]),
            x25519.X25519PublicKey.from_public_bytes(self.raw[MLKEM768_PUBLIC_SIZE:]),
        )

    def to_text(self) -> str:
        """The one-line text form, ``anonsign-organizer-v1:<base64url>``."""
        encoded = base64.urlsafe_b64encode(self.raw).rstrip(b"=").decode("ascii")
        return labels.PUBLIC_KEY_PREFIX + encoded

    @classmethod
    def from_text(cls, text: str) -> OrganizerPublicKey:
        """Read a key from its text form or from a whole ``.pub`` file.

        Blank lines and lines starting with ``#`` are ignored; exactly one key line must
        remain. Every failure is a :class:`errors.KeyFileError` that says what is wrong.
        """
        lines = [line.strip() for line in text.removeprefix("\ufeff").splitlines()]
        if any(
            line == labels.SECRET_KEY_FILE_HEADER or line.startswith("secret:") for line in lines
        ):
            # Said before anything else: the person is about to hand a secret to the
            # server operator, and must learn that now.
            raise errors.KeyFileError("This is a secret key file; give the .pub file instead.")
        key_lines = [line for line in lines if line and not line.startswith("#")]
        if not key_lines:
            raise errors.KeyFileError("This file holds no organizer public key.")
        if len(key_lines) > 1:
            raise errors.KeyFileError(
                "This file holds more than one line that is not a comment; "
                "an organizer public key file has exactly one key line."
            )
        line = key_lines[0]
        if not line.startswith(labels.PUBLIC_KEY_PREFIX):
            if line.startswith(_PREFIX_FAMILY):
                raise errors.KeyFileError(
                    f"This organizer public key is in a format this version of anonsign "
                    f"does not know (it should start with {labels.PUBLIC_KEY_PREFIX})."
                )
            raise errors.KeyFileError(
                f"This is not an anonsign organizer public key "
                f"(it should start with {labels.PUBLIC_KEY_PREFIX})."
            )
        return cls(_decode_base64url(line.removeprefix(labels.PUBLIC_KEY_PREFIX)))

    def public_key_file_text(self, name: str) -> str:
        """The ``NAME.pub`` file: three comment lines, then the key line."""
        validate_key_name(name)
        return (
            f'# anonsign organizer public key "{name}"\n'
            f"# fingerprint: {self.fingerprint}\n"
            f"# Safe to share. Give it to the server operator for: "
            f"anonsign petition create ... --recipient {name}.pub\n"
            f"{self.to_text()}\n"
        )


def _decode_base64url(encoded: str) -> bytes:
    """Strict unpadded base64url: one encoding per key, so one key has one text form."""
    damaged = errors.KeyFileError(
        "This organizer public key is damaged (it is not valid base64url); "
        "copy the whole key line again."
    )
    if not encoded.isascii() or "=" in encoded or len(encoded) % 4 == 1:
        raise damaged
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
    except binascii.Error:
        raise damaged from None
    # Reject non-zero trailing bits, which decode to the same bytes as the canonical form.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != encoded:
        raise damaged
    return raw


def load_public_key(path: Path) -> OrganizerPublicKey:
    """Read an organizer ``.pub`` file; every failure is one line naming ``path``."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise errors.KeyFileError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise errors.KeyFileError(
            f"{path} is a folder, not an organizer public key file."
        ) from None
    except OSError as exc:
        raise errors.KeyFileError(f"{path} cannot be read ({exc.strerror}).") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise errors.KeyFileError(f"{path} is far too large to be an organizer public key file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.KeyFileError(
            f"{path} is not a text file, so not an organizer public key file."
        ) from None
    try:
        return OrganizerPublicKey.from_text(text)
    except errors.KeyFileError as exc:
        raise errors.KeyFileError(f"{path}: {exc}") from None
