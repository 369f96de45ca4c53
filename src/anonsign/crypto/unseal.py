"""Opening a sealed contact with one organizer's secret key. OFFLINE ONLY.

This module owns the strict reading of the sealed-contact format that ``seal``
defines (see its module docstring for the byte layout). It runs on the organizers'
offline machine: the server and web process must never import it. It must not read
key files or ask for passphrases (``keyfile`` and the CLI do), and it never returns
partial results: a contact either opens completely and authentically, or raises.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from anonsign import errors
from anonsign.crypto import labels
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.keys import KEY_ID_SIZE
from anonsign.crypto.seal import (
    DATA_KEY_SIZE,
    HEADER_FIXED_SIZE,
    MAGIC_SIZE,
    PAYLOAD_NONCE,
    STANZA_SIZE,
    SUITE,
    hpke_info,
    payload_aad,
    sealed_size,
    unpad_contact,
)


def _split(sealed: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """Return (header, [(key_id, enc), ...], payload), or raise SealedContactError."""
    if len(sealed) < HEADER_FIXED_SIZE or sealed[:MAGIC_SIZE] != labels.SEALED_CONTACT_MAGIC:
        raise errors.SealedContactError(
            "This is not an anonsign sealed contact (it does not start with the v1 marker)."
        )
    n = sealed[MAGIC_SIZE]
    if n == 0:
        raise errors.SealedContactError(
            "This sealed contact is damaged (it names no organizer key)."
        )
    if len(sealed) != sealed_size(n):
        raise errors.SealedContactError(
            f"This sealed contact is damaged or cut short ({len(sealed)} bytes where "
            f"{sealed_size(n)} were expected for {n} organizer keys)."
        )
    header_end = HEADER_FIXED_SIZE + n * STANZA_SIZE
    stanzas = []
    for offset in range(HEADER_FIXED_SIZE, header_end, STANZA_SIZE):
        stanza = sealed[offset : offset + STANZA_SIZE]
        stanzas.append((stanza[:KEY_ID_SIZE], stanza[KEY_ID_SIZE:]))
    if len({key_id for key_id, _ in stanzas}) != n:
        # ``seal`` never repeats a key; a repeat means the contact was not made by it.
        raise errors.SealedContactError("This sealed contact is damaged (a key appears twice).")
    return sealed[:header_end], stanzas, sealed[header_end:]


def open_contact(sealed: bytes, key: OrganizerSecretKey, petition_id: str) -> str:
    """Open a sealed contact of petition ``petition_id`` with ``key``; return the contact.

    A malformed blob is :class:`errors.SealedContactError`; one with no stanza for this
    key is :class:`errors.NotSealedToThisKey`; anything that fails authentication (wrong
    petition, altered or swapped bytes) is :class:`errors.ContactDoesNotOpen`.
    """
    header, stanzas, payload = _split(sealed)
    key_id = key.public_key().key_id
    matching = [enc for stanza_key_id, enc in stanzas if stanza_key_id == key_id]
    if not matching:
        raise errors.NotSealedToThisKey()
    try:
        data_key = SUITE.decrypt(matching[0], key.hpke_key(), info=hpke_info(petition_id))
    except InvalidTag:
        raise errors.ContactDoesNotOpen() from None
    if len(data_key) != DATA_KEY_SIZE:
        raise errors.ContactDoesNotOpen()
    try:
        padded = ChaCha20Poly1305(data_key).decrypt(
            PAYLOAD_NONCE, payload, payload_aad(petition_id, header)
        )
    except InvalidTag:
        raise errors.ContactDoesNotOpen() from None
    return unpad_contact(padded)
