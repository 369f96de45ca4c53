"""Sealing a signer's optional contact to every organizer key of a petition.

This module owns the sealed-contact format and the contact padding. It uses organizer
PUBLIC keys only: the web process imports it, so it must never import ``keyfile`` or
``unseal`` or hold anything that could open what it seals. Opening lives in ``unseal``,
on the organizers' offline machine.

Padded contact (always ``CONTACT_BLOCK`` = 1024 bytes)::

    length L of the contact's UTF-8 bytes (2 bytes, big-endian, 0..1022)
    || the L bytes
    || 1022 - L zero bytes

Sealed contact, format v1 (``n`` = number of organizer keys, 1..255)::

    offset        size        field
    0             4           magic, SEALED_CONTACT_MAGIC = b"ASC1"
    4             1           n
    5             n * 1184    n stanzas, in the order the keys were given; each is
                                key_id (16): OrganizerPublicKey.key_id of the recipient
                                enc (1168):  HPKE single-shot encryption of a fresh random
                                             32-byte data key to that recipient, suite
                                             MLKEM768-X25519 / HKDF-SHA256 /
                                             ChaCha20-Poly1305 (1120-byte KEM output,
                                             32-byte data key, 16-byte tag), with
                                             info = CONTACT_HPKE_INFO || 0x00 || petition_id
    5 + n * 1184  1040        payload: ChaCha20-Poly1305(data_key) encryption of the
                              padded contact (1024) plus its tag (16), with a nonce of
                              12 zero bytes and
                              aad = CONTACT_PAYLOAD || 0x00 || petition_id || 0x00 || header
                              where header = bytes 0 .. 5 + n * 1184 (magic, n, stanzas)

    total = 1045 + 1184 * n   (2229 bytes for one key, 4597 for three)

Properties: every sealed contact of a petition has the same size whatever the contact
says (the padding), so stored rows reveal nothing about contact length; the petition id
in both the HPKE info and the payload AAD stops a sealed contact from opening under
another petition; the header in the payload AAD stops stanzas from being swapped,
dropped or reordered, and the payload from being moved under another header.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from anonsign import errors
from anonsign.crypto import labels
from anonsign.crypto._context import petition_context, petition_id_bytes
from anonsign.crypto.keys import KEY_ID_SIZE, OrganizerPublicKey

CONTACT_BLOCK = 1024
LENGTH_PREFIX_SIZE = 2
MAX_CONTACT_BYTES = CONTACT_BLOCK - LENGTH_PREFIX_SIZE

SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)

DATA_KEY_SIZE = 32
AEAD_TAG_SIZE = 16
#: KEM output (1120) + encrypted data key (32) + tag (16); fixed for this suite.
HPKE_CIPHERTEXT_SIZE = hpke.KEM.MLKEM768_X25519.enc_length() + DATA_KEY_SIZE + AEAD_TAG_SIZE
STANZA_SIZE = KEY_ID_SIZE + HPKE_CIPHERTEXT_SIZE
MAGIC_SIZE = len(labels.SEALED_CONTACT_MAGIC)
HEADER_FIXED_SIZE = MAGIC_SIZE + 1
PAYLOAD_SIZE = CONTACT_BLOCK + AEAD_TAG_SIZE
MAX_RECIPIENTS = 255

#: The data key encrypts exactly one message and is then forgotten, so a fixed nonce can
#: never repeat under one key; a random nonce would only add 12 bytes.
PAYLOAD_NONCE = bytes(12)


def sealed_size(n_recipients: int) -> int:
    """The size in bytes of every contact sealed to ``n_recipients`` keys."""
    if not 1 <= n_recipients <= MAX_RECIPIENTS:
        raise ValueError(f"a contact is sealed to 1..{MAX_RECIPIENTS} keys, not {n_recipients}")
    return HEADER_FIXED_SIZE + n_recipients * STANZA_SIZE + PAYLOAD_SIZE


def pad_contact(contact: str) -> bytes:
    """The contact as a fixed ``CONTACT_BLOCK``-byte block (format in the module docstring)."""
    data = contact.encode("utf-8")
    if len(data) > MAX_CONTACT_BYTES:
        raise errors.ContactTooLong(
            f"The contact is too long (at most {MAX_CONTACT_BYTES} bytes, about "
            f"{MAX_CONTACT_BYTES} Latin letters or fewer in other scripts; yours is "
            f"{len(data)} bytes); please shorten it."
        )
    return struct.pack(">H", len(data)) + data + bytes(MAX_CONTACT_BYTES - len(data))


def unpad_contact(padded: bytes) -> str:
    """Inverse of :func:`pad_contact`, strict: any other block is ContactDoesNotOpen.

    Anyone holding the public keys can seal any block, so an authentic decryption does
    not prove the padding is well formed; it is checked byte for byte.
    """
    bad = errors.ContactDoesNotOpen(
        "This contact opened but its content is malformed; it was not sealed by anonsign."
    )
    if len(padded) != CONTACT_BLOCK:
        raise bad
    (length,) = struct.unpack(">H", padded[:LENGTH_PREFIX_SIZE])
    if length > MAX_CONTACT_BYTES:
        raise bad
    end = LENGTH_PREFIX_SIZE + length
    if any(padded[end:]):
        raise bad
    try:
        return padded[LENGTH_PREFIX_SIZE:end].decode("utf-8")
    except UnicodeDecodeError:
        raise bad from None


def payload_aad(petition_id: str, header: bytes) -> bytes:
    """The payload's associated data; shared with ``unseal`` so both build it one way."""
    return petition_context(labels.CONTACT_PAYLOAD, petition_id) + b"\x00" + header


def hpke_info(petition_id: str) -> bytes:
    """The HPKE ``info`` of every stanza of a petition's sealed contacts."""
    return petition_context(labels.CONTACT_HPKE_INFO, petition_id)


def seal_contact(contact: str, recipients: Sequence[OrganizerPublicKey], petition_id: str) -> bytes:
    """Seal ``contact`` so that any one of ``recipients`` (and nobody else) can open it.

    Raises :class:`errors.ContactTooLong` for a contact over ``MAX_CONTACT_BYTES``;
    an empty, oversized or repeating recipient list is a programming error (``ValueError``).
    """
    padded = pad_contact(contact)
    n = len(recipients)
    sealed_size(n)  # validates n
    key_ids = [recipient.key_id for recipient in recipients]
    if len(set(key_ids)) != n:
        # A repeated key would make the size depend on a mistake and the stanza to try
        # ambiguous when opening.
        raise ValueError("each organizer key may appear only once among the recipients")
    petition_id_bytes(petition_id)  # validates the id before any key is generated

    data_key = ChaCha20Poly1305.generate_key()
    info = hpke_info(petition_id)
    header = bytearray(labels.SEALED_CONTACT_MAGIC)
    header.append(n)
    for recipient, key_id in zip(recipients, key_ids, strict=True):
        enc = SUITE.encrypt(data_key, recipient.hpke_key(), info=info)
        if len(enc) != HPKE_CIPHERTEXT_SIZE:
            # The fixed size is what keeps every sealed contact of a petition the same
            # length; a library change that broke it must stop sealing, not leak.
            raise RuntimeError(
                f"HPKE ciphertext is {len(enc)} bytes, expected {HPKE_CIPHERTEXT_SIZE}"
            )
        header += key_id + enc
    payload = ChaCha20Poly1305(data_key).encrypt(
        PAYLOAD_NONCE, padded, payload_aad(petition_id, bytes(header))
    )
    sealed = bytes(header) + payload
    if len(sealed) != sealed_size(n):
        raise RuntimeError("sealed contact has an unexpected size")
    return sealed
