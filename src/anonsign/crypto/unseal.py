"""Opening a sealed contact with one organizer's secret key. OFFLINE ONLY.

This module owns the strict reading of the sealed-contact format that ``seal``
defines (see its module docstring for the byte layout). It runs on the organizers'
offline machine: the server and web process must never import it. It must not read
key files or ask for passphrases (``keyfile`` and the CLI do), and it never returns
partial results: a contact either opens completely and authentically, or raises.

Opening a petition's contacts together (:func:`open_contacts`) tells a damaged contact
from a wrong key: every contact of a petition is sealed to the same organizer keys, so
when the others name the given key and one does not, that one was damaged, and sending
the organizer to try another key would be wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
            "This sealed contact is damaged, or is not an anonsign sealed contact (it does "
            "not start with the v1 marker)."
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


def names_key(sealed: bytes, key_id: bytes) -> bool:
    """Whether a well-formed sealed contact has a stanza for ``key_id`` (False if malformed)."""
    try:
        _header, stanzas, _payload = _split(sealed)
    except errors.SealedContactError:
        return False
    return any(stanza_key_id == key_id for stanza_key_id, _enc in stanzas)


def open_contacts(
    sealed: Sequence[bytes],
    key: OrganizerSecretKey,
    petition_id: str,
    progress: Callable[[], None] | None = None,
) -> list[str]:
    """Open every sealed contact of one petition with ``key``, or raise for the first that fails.

    :class:`errors.NotSealedToThisKey` when no contact names the key (try another key);
    otherwise a failing contact is damaged (:class:`errors.ContactDamaged` or a
    subclass, or :class:`errors.SealedContactError` when malformed), and the message says
    which one, counted from 1. ``progress`` is called after each contact that opened.
    """
    key_id = key.public_key().key_id
    total = len(sealed)
    if total and not any(names_key(item, key_id) for item in sealed):
        raise errors.NotSealedToThisKey(
            f"None of the {total} contacts was sealed to the given key; try another "
            "organizer key of this petition."
        )
    contacts = []
    for number, item in enumerate(sealed, start=1):
        try:
            contacts.append(open_contact(item, key, petition_id))
        except errors.NotSealedToThisKey:
            raise errors.ContactDamaged(
                f"Contact {number} of {total} is damaged: it does not name the given key, "
                "though other contacts of this petition do. Export the contacts again from "
                "the server."
            ) from None
        except errors.SealedContactError as exc:
            raise type(exc)(f"Contact {number} of {total}: {exc.message}") from None
        if progress is not None:
            progress()
    return contacts
