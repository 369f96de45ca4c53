"""C2SP signed notes with Ed25519: the log key that signs checkpoints, and its verifier.

This module is the only one that signs or verifies a note. It implements
c2sp.org/signed-note (Ed25519, signature type 0x01) and the verifier key text that the
Go reference (golang.org/x/mod/sumdb/note) and every tlog tool use::

    note          = text (ending in "\\n") || "\\n" || signature line, once or more
    signature     = "\u2014 " || name || " " || base64(key ID || Ed25519 signature) || "\\n"
    key ID        = SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]
    verifier key  = name || "+" || key ID as 8 hex digits || "+" || base64(0x01 || public key)

A key name is non-empty and holds no Unicode space and no ``+``. A note is valid UTF-8
with no control character but newline; its text is everything up to the last blank
line. As the spec requires, a signature by another key (another name *or* another key
ID) is ignored, a signature whose name and key ID are this key's must verify (else the
whole note is refused), and a note with no signature by this key is refused. Every
failure is a :class:`NoteError` whose message names what was expected and what was found.

It owns the log's private key while it is in memory (:class:`LogSigner`), and must never
write it anywhere (the instance code stores it), never parse a checkpoint body (that is
``anonsign.audit.checkpoint``), and never import a web framework or a database layer:
auditors verify notes on their own machines.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from anonsign.errors import AnonsignError

__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_CHARS",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "BadNoteSignature",
    "InvalidLogKey",
    "InvalidLogKeyName",
    "InvalidVerifierKey",
    "KeyNameMismatch",
    "LogSigner",
    "MalformedNote",
    "NotSignedByKey",
    "NoteError",
    "NoteSignature",
    "NoteVerifier",
    "ParsedNote",
    "b64decode_strict",
    "check_key_id",
    "key_id",
    "parse_note",
    "split_verifier_key",
    "validate_key_name",
]

#: Signature type byte of Ed25519 in key IDs and verifier keys (signed-note, "Signature types").
ALG_ED25519 = 0x01
#: What every signature line starts with: EM DASH (U+2014) and a space.
SIGNATURE_PREFIX = "\u2014 "
#: The spec asks verifiers to cap the number of signatures and to accept at least 16;
#: 100 is the Go reference's cap.
MAX_SIGNATURES = 100
#: A checkpoint note is a few hundred bytes; 100 post-quantum signatures of ~5 kB still
#: fit in 1 MiB. Anything larger is refused before it is parsed.
MAX_NOTE_CHARS = 1 << 20

_PUBLIC_KEY_SIZE = 32
_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


# --- errors -------------------------------------------------------------------------------


class NoteError(AnonsignError):
    """This signed note does not check out against the given key."""


class MalformedNote(NoteError):
    """This is not a signed note (C2SP signed-note): it is damaged or another kind of file."""


class InvalidLogKeyName(NoteError):
    """A log key name must be non-empty and contain no spaces and no '+'."""


class InvalidVerifierKey(NoteError):
    """This is not a verifier key of the form <name>+<8 hex digits>+<base64 key>."""


class InvalidLogKey(NoteError):
    """This log signing key is damaged: an Ed25519 private key is 32 bytes."""


class NotSignedByKey(NoteError):
    """This note carries no signature by the given key."""


class KeyNameMismatch(NotSignedByKey):
    """This note is signed with the given key's ID but under another key name."""


class BadNoteSignature(NoteError):
    """This note's signature by the given key does not verify: the text or the signature was
    altered, or another key claims this key's name and ID."""


# --- names, key IDs, base64 ---------------------------------------------------------------


def _is_valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def validate_key_name(name: str) -> str:
    """Return ``name`` if it is a valid signed-note key name, else raise InvalidLogKeyName.

    The spec's rule: non-empty, no Unicode space, no ``+`` (which separates the parts of a
    verifier key). Control characters are refused too: a note may not contain them.
    """
    if not isinstance(name, str):
        raise TypeError("a key name is a str")
    if not _is_valid_name(name) or _CONTROL.search(name):
        raise InvalidLogKeyName(
            f"The log key name {name[:80]!r} is not valid: expected a non-empty name with no "
            "spaces, no '+' and no control characters, such as 'petitions.example.org'."
        )
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key)
    return digest.finalize()[:_KEY_ID_SIZE]


def split_verifier_key(text: str, alg: int, alg_name: str) -> tuple[str, str, bytes]:
    """Split ``<name>+<8 hex key ID>+<base64(alg || 32-byte public key)>`` into its name,
    key ID (hex, as written) and public key, checking everything but the key ID (which
    depends on the signature type: :func:`check_key_id`)."""
    if not isinstance(text, str):
        raise TypeError("a verifier key is a str")
    value = text.strip()
    parts = value.split("+", 2)
    if len(parts) != 3:
        raise InvalidVerifierKey(
            f"The verifier key {value[:80]!r} has {len(parts)} part(s), expected "
            "<name>+<8 hex digits>+<base64 key>."
        )
    name, id_hex, encoded = parts
    if not _is_valid_name(name) or _CONTROL.search(name):
        raise InvalidVerifierKey(
            f"The verifier key's name {name[:80]!r} is not valid: expected a non-empty "
            "name with no spaces and no '+'."
        )
    if not _HEX8.fullmatch(id_hex):
        raise InvalidVerifierKey(
            f"The verifier key's ID {id_hex[:20]!r} is not valid: expected 8 hex digits."
        )
    raw = _b64decode(encoded)
    if raw is None:
        raise InvalidVerifierKey(
            "The verifier key's last part is not valid base64: expected "
            f"base64(0x{alg:02x} || 32-byte {alg_name} public key)."
        )
    if len(raw) != 1 + _PUBLIC_KEY_SIZE or raw[0] != alg:
        what = f"type byte 0x{raw[0]:02x}" if raw else "nothing"
        raise InvalidVerifierKey(
            f"The verifier key holds {len(raw)} bytes starting with {what}, expected "
            f"{1 + _PUBLIC_KEY_SIZE} bytes starting with 0x{alg:02x} ({alg_name})."
        )
    return name, id_hex, raw[1:]


def check_key_id(id_hex: str, expected: bytes) -> None:
    """Refuse a verifier key whose written key ID is not the one its name and key give."""
    if expected != bytes.fromhex(id_hex):
        raise InvalidVerifierKey(
            f"The verifier key's ID {id_hex.lower()} does not match its name and key, "
            f"which give {expected.hex()}; the key was altered."
        )


def _b64decode(text: str) -> bytes | None:
    """Strict standard base64 (RFC 4648 §4, padded, canonical), or None if it is not."""
    try:
        raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    # strict_mode still accepts non-zero unused bits; only the canonical text is accepted.
    return raw if binascii.b2a_base64(raw, newline=False) == text.encode("ascii") else None


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


#: For the other note signature types (anonsign.crypto.cosign): the same strict base64.
b64decode_strict = _b64decode


# --- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class ParsedNote:
    """A note split into its text and signature lines, NOT verified: do not use the text."""

    text: str
    signatures: tuple[NoteSignature, ...]


def _malformed(why: str) -> MalformedNote:
    return MalformedNote(f"This is not a valid signed note: {why}.")


def parse_note(note: str) -> ParsedNote:
    """Split a signed note into text and signatures, checking its syntax only.

    Raises :class:`MalformedNote` naming the first rule the note breaks. The returned text
    is unverified; :meth:`NoteVerifier.open` is how to get text one may act on.
    """
    if not isinstance(note, str):
        raise TypeError("a note is a str (decode the file as UTF-8 first)")
    if len(note) > MAX_NOTE_CHARS:
        raise _malformed(
            f"it is {len(note):,} characters long, expected at most {MAX_NOTE_CHARS:,}"
        )
    control = _CONTROL.search(note)
    if control:
        raise _malformed(
            f"it contains the control character U+{ord(control.group()):04X} at offset "
            f"{control.start()}, expected none but newline"
        )
    if not note.endswith("\n"):
        raise _malformed("it does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise _malformed("expected the text, a blank line and signature lines; found no blank line")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise _malformed("expected at least one signature line after the last blank line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _malformed(f"it has {len(lines)} signature lines, expected at most {MAX_SIGNATURES}")
    signatures = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise _malformed(
                f"signature line {number} starts with {line[:12]!r}, expected an em dash "
                "(U+2014) and a space"
            )
        name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not space or not _is_valid_name(name):
            raise _malformed(
                f"signature line {number} has no valid key name (expected '\u2014 <name> "
                "<base64>', the name with no spaces and no '+')"
            )
        raw = _b64decode(encoded)
        if raw is None or len(raw) <= _KEY_ID_SIZE:
            raise _malformed(
                f"signature line {number} (key {name!r}) does not end in the base64 of a "
                "4-byte key ID and a signature"
            )
        signatures.append(NoteSignature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:]))
    return ParsedNote(text, tuple(signatures))


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError("note text is a str")
    if not text.endswith("\n"):
        raise _malformed("the text to sign must end with a newline")
    control = _CONTROL.search(text)
    if control:
        raise _malformed(
            f"the text to sign contains the control character U+{ord(control.group()):04X}, "
            "expected none but newline"
        )
    if len(text) > MAX_NOTE_CHARS // 2:
        raise _malformed(f"the text to sign is {len(text):,} characters long, expected less")


# --- verifying ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 note key: name and 32-byte public key (the key ID follows)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != _PUBLIC_KEY_SIZE:
            raise InvalidVerifierKey(
                f"An Ed25519 public key is {_PUBLIC_KEY_SIZE} bytes, got {len(self.public_key)}."
            )

    @classmethod
    def from_verifier_key(cls, text: str) -> NoteVerifier:
        """Parse ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``.

        Leading and trailing whitespace (a file's final newline) is ignored; a name cannot
        contain any. The key ID must be the one the name and key give.
        """
        name, id_hex, public_key = split_verifier_key(text, ALG_ED25519, "Ed25519")
        verifier = cls(name, public_key)
        check_key_id(id_hex, verifier.key_id)
        return verifier

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID that prefixes each of this key's signatures."""
        return key_id(self.name, self.public_key)

    def verifier_key(self) -> str:
        """The verifier key text: ``<name>+<key ID hex>+<base64(0x01 || public key)>``."""
        encoded = _b64encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def open(self, note: str) -> str:
        """Return the text of ``note`` if this key signed it; raise a NoteError otherwise.

        Signatures by other keys are ignored (a witness's cosignature, a rotated key); a
        signature under this key's name and ID must verify, every one of them.
        """
        parsed = parse_note(note)
        own = [s for s in parsed.signatures if s.name == self.name and s.key_id == self.key_id]
        if not own:
            raise self._not_signed(parsed)
        public = Ed25519PublicKey.from_public_bytes(self.public_key)
        message = parsed.text.encode("utf-8")
        for signature in own:
            try:
                if len(signature.signature) != _SIGNATURE_SIZE:
                    raise InvalidSignature
                public.verify(signature.signature, message)
            except InvalidSignature:
                raise BadNoteSignature(
                    f"The note's signature by {self.name}+{self.key_id.hex()} "
                    "does not verify: expected a valid Ed25519 signature of the text, so the "
                    "text or the signature was altered (or another key took this key's name "
                    "and ID)."
                ) from None
        return parsed.text

    def others_in(self, note: str) -> list[NoteSignature]:
        """The signatures of ``note`` by keys other than this one: a log's checkpoint as
        served, its own signature first, then the witnesses' cosignatures (unverified)."""
        return [
            s for s in parse_note(note).signatures if (s.name, s.key_id) != (self.name, self.key_id)
        ]

    def _not_signed(self, parsed: ParsedNote) -> NotSignedByKey:
        same_id = [s.name for s in parsed.signatures if s.key_id == self.key_id]
        if same_id:
            return KeyNameMismatch(
                f"The note is signed with key ID {self.key_id.hex()} under the name "
                f"{same_id[0]!r}, expected the name {self.name!r}; it is not signed by this key."
            )
        found = ", ".join(sorted({f"{s.name}+{s.key_id.hex()}" for s in parsed.signatures}))
        return NotSignedByKey(
            f"The note is not signed by {self.name}+{self.key_id.hex()}; it is signed only "
            f"by {found}."
        )


# --- signing ------------------------------------------------------------------------------


class LogSigner:
    """The log's Ed25519 signing key and its name; signs note texts (checkpoint bodies).

    ``repr`` shows the name and key ID only, never the private key.
    """

    __slots__ = ("_private", "_verifier", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("a LogSigner needs an Ed25519PrivateKey")
        self.name = validate_key_name(name)
        self._private = private_key
        self._verifier = NoteVerifier(self.name, private_key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, name: str) -> LogSigner:
        """Make a new log key named ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, name: str, raw: bytes) -> LogSigner:
        """Rebuild a log key from its name and the 32 bytes of :meth:`to_private_bytes`."""
        if not isinstance(raw, bytes):
            raise TypeError("a log signing key is bytes")
        if len(raw) != _PUBLIC_KEY_SIZE:
            raise InvalidLogKey(
                f"This log signing key is {len(raw)} bytes long, expected {_PUBLIC_KEY_SIZE} "
                "(an Ed25519 private key); the key file is damaged."
            )
        return cls(name, Ed25519PrivateKey.from_private_bytes(raw))

    def to_private_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 private key (the RFC 8032 seed). Keep it secret."""
        return self._private.private_bytes_raw()

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID that prefixes each signature."""
        return self._verifier.key_id

    def verifier(self) -> NoteVerifier:
        """The public half, as auditors hold it."""
        return self._verifier

    def verifier_key(self) -> str:
        """The verifier key text to publish: ``<name>+<key ID hex>+<base64(0x01 || key)>``."""
        return self._verifier.verifier_key()

    def sign(self, text: str) -> str:
        """Return the signed note: ``text``, a blank line, and this key's signature line.

        ``text`` must end with a newline and contain no control character but newline.
        """
        _check_text(text)
        signature = self._private.sign(text.encode("utf-8"))
        line = f"{SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + signature)}\n"
        return f"{text}\n{line}"

    def __repr__(self) -> str:
        return f"LogSigner(name={self.name!r}, key_id={self.key_id.hex()})"
