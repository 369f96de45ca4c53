"""Sealed contacts: fixed size, padding, and every way opening one must fail."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from anonsign import errors
from anonsign.crypto import labels, seal
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.crypto.keys import OrganizerPublicKey
from anonsign.crypto.seal import (
    CONTACT_BLOCK,
    MAX_CONTACT_BYTES,
    pad_contact,
    seal_contact,
    sealed_size,
    unpad_contact,
)
from anonsign.crypto.unseal import open_contact, open_contacts

PETITION = "save-the-river"
Keys = tuple[OrganizerSecretKey, OrganizerSecretKey, OrganizerSecretKey]

# Offsets in the v1 layout (see the seal module docstring).
N_OFFSET = 4
FIRST_STANZA = 5
STANZA = 16 + 1168


def pubs(keys: tuple[OrganizerSecretKey, ...]) -> list[OrganizerPublicKey]:
    return [key.public_key() for key in keys]


# --- sizes ---------------------------------------------------------------------------------


def test_documented_sizes() -> None:
    assert hpke.KEM.MLKEM768_X25519.enc_length() == 1120
    assert seal.HPKE_CIPHERTEXT_SIZE == 1168
    assert seal.STANZA_SIZE == STANZA
    assert sealed_size(1) == 2229
    assert sealed_size(3) == 4597
    assert sealed_size(255) == 1045 + 1184 * 255


@pytest.mark.parametrize("n", [0, -1, 256])
def test_sealed_size_refuses_impossible_counts(n: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.255"):
        sealed_size(n)


@pytest.mark.parametrize("n", [1, 3])
def test_every_sealed_contact_has_the_same_size(org_keys: Keys, n: int) -> None:
    recipients = pubs(org_keys[:n])
    contacts = ["", "a", "alice@example.org", "é" * 511, "x" * MAX_CONTACT_BYTES]
    sizes = {len(seal_contact(contact, recipients, PETITION)) for contact in contacts}
    assert sizes == {sealed_size(n)}


def test_sealing_twice_gives_different_bytes(org_keys: Keys) -> None:
    recipients = pubs(org_keys[:1])
    assert seal_contact("a", recipients, PETITION) != seal_contact("a", recipients, PETITION)


# --- padding -------------------------------------------------------------------------------


def test_pad_layout() -> None:
    padded = pad_contact("hé")
    assert len(padded) == CONTACT_BLOCK == 1024
    assert padded[:5] == b"\x00\x03h\xc3\xa9"
    assert padded[5:] == bytes(1019)


def test_max_contact_seals_and_one_byte_more_is_too_long(org_keys: Keys) -> None:
    recipients = pubs(org_keys[:1])
    longest = "x" * MAX_CONTACT_BYTES
    assert (
        open_contact(seal_contact(longest, recipients, PETITION), org_keys[0], PETITION) == longest
    )
    with pytest.raises(errors.ContactTooLong) as info:
        seal_contact(longest + "x", recipients, PETITION)
    assert info.value.message.startswith("The contact is too long (at most 1022 bytes")
    assert "yours is 1023" in info.value.message
    assert info.value.message.endswith("please shorten it.")


def test_limit_counts_bytes_not_characters() -> None:
    assert len(pad_contact("é" * 511)) == CONTACT_BLOCK  # 1022 bytes
    with pytest.raises(errors.ContactTooLong, match="yours is 1024"):
        pad_contact("é" * 512)
    with pytest.raises(errors.ContactTooLong):
        pad_contact("x" + "🙂" * 256)  # 1 + 1024 bytes


@settings(max_examples=200, database=None, deadline=None)
@given(st.text(max_size=MAX_CONTACT_BYTES).filter(lambda s: len(s.encode()) <= MAX_CONTACT_BYTES))
def test_pad_unpad_round_trip(contact: str) -> None:
    padded = pad_contact(contact)
    assert len(padded) == CONTACT_BLOCK
    assert unpad_contact(padded) == contact


@settings(max_examples=50, database=None, deadline=None)
@given(st.text(min_size=1).map(lambda s: s * (MAX_CONTACT_BYTES // len(s.encode()) + 1)))
def test_anything_over_the_limit_is_too_long(contact: str) -> None:
    assert len(contact.encode()) > MAX_CONTACT_BYTES
    with pytest.raises(errors.ContactTooLong):
        pad_contact(contact)


@pytest.mark.parametrize(
    "padded",
    [
        b"",
        bytes(1023),
        bytes(1025),
        b"\x03\xff" + bytes(1022),  # length 1023 > 1022
        b"\x00\x01a" + bytes(1020) + b"\x01",  # non-zero padding
        b"\x00\x01\xff" + bytes(1021),  # not UTF-8
        b"\x00\x02\xed\xa0" + bytes(1020),  # UTF-8-encoded surrogate half
    ],
)
def test_unpad_is_strict(padded: bytes) -> None:
    with pytest.raises(errors.ContactDoesNotOpen, match="malformed"):
        unpad_contact(padded)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "contact",
    ["alice@example.org", "", "Signal: +49 151 2345678", "Зоя — 电话 ١٢٣ 🙂", "a\x00b\nc"],
)
def test_round_trip(org_keys: Keys, contact: str) -> None:
    sealed = seal_contact(contact, pubs(org_keys[:1]), PETITION)
    assert open_contact(sealed, org_keys[0], PETITION) == contact


def test_each_of_three_recipients_opens_it(
    org_keys: Keys, outsider_key: OrganizerSecretKey
) -> None:
    sealed = seal_contact("alice@example.org", pubs(org_keys), PETITION)
    for key in org_keys:
        assert open_contact(sealed, key, PETITION) == "alice@example.org"
    with pytest.raises(errors.NotSealedToThisKey):
        open_contact(sealed, outsider_key, PETITION)


def test_key_not_a_recipient(org_keys: Keys) -> None:
    sealed = seal_contact("alice@example.org", pubs(org_keys[:2]), PETITION)
    with pytest.raises(errors.NotSealedToThisKey) as info:
        open_contact(sealed, org_keys[2], PETITION)
    assert info.value.message == (
        "This contact was not sealed to the given key; try another organizer key."
    )


def test_stanzas_are_in_recipient_order_with_key_ids(org_keys: Keys) -> None:
    sealed = seal_contact("a", pubs(org_keys), PETITION)
    assert sealed[:4] == labels.SEALED_CONTACT_MAGIC
    assert sealed[N_OFFSET] == 3
    for i, key in enumerate(org_keys):
        start = FIRST_STANZA + i * STANZA
        assert sealed[start : start + 16] == key.public_key().key_id


# --- negative: wrong context ---------------------------------------------------------------


def test_wrong_petition_id_does_not_open(org_keys: Keys) -> None:
    sealed = seal_contact("alice@example.org", pubs(org_keys[:1]), PETITION)
    with pytest.raises(errors.ContactDoesNotOpen):
        open_contact(sealed, org_keys[0], "save-the-river-2")


def test_petition_id_is_checked_by_hpke_info_too(org_keys: Keys) -> None:
    # The stanza alone, decrypted with another petition's info, must already fail.
    sealed = seal_contact("a", pubs(org_keys[:1]), PETITION)
    enc = sealed[FIRST_STANZA + 16 : FIRST_STANZA + STANZA]
    with pytest.raises(InvalidTag):
        seal.SUITE.decrypt(enc, org_keys[0].hpke_key(), info=seal.hpke_info("other"))
    assert len(seal.SUITE.decrypt(enc, org_keys[0].hpke_key(), info=seal.hpke_info(PETITION))) == 32


def test_wrong_key_with_forged_key_id_does_not_open(org_keys: Keys) -> None:
    # Relabel the stanza with another key's id: that key finds "its" stanza, and HPKE fails.
    sealed = bytearray(seal_contact("a", pubs(org_keys[:1]), PETITION))
    sealed[FIRST_STANZA : FIRST_STANZA + 16] = org_keys[1].public_key().key_id
    with pytest.raises(errors.ContactDoesNotOpen):
        open_contact(bytes(sealed), org_keys[1], PETITION)


# --- negative: cut and paste ---------------------------------------------------------------


def test_stanza_swapped_between_two_sealed_contacts(org_keys: Keys) -> None:
    recipients = pubs(org_keys[:1])
    one = seal_contact("one@example.org", recipients, PETITION)
    two = seal_contact("two@example.org", recipients, PETITION)
    mixed = (
        one[:FIRST_STANZA]
        + two[FIRST_STANZA : FIRST_STANZA + STANZA]
        + one[FIRST_STANZA + STANZA :]
    )
    with pytest.raises(errors.ContactDoesNotOpen):
        open_contact(mixed, org_keys[0], PETITION)


def test_payload_swapped_between_two_sealed_contacts(org_keys: Keys) -> None:
    recipients = pubs(org_keys[:1])
    one = seal_contact("one@example.org", recipients, PETITION)
    two = seal_contact("two@example.org", recipients, PETITION)
    cut = sealed_size(1) - seal.PAYLOAD_SIZE
    with pytest.raises(errors.ContactDoesNotOpen):
        open_contact(one[:cut] + two[cut:], org_keys[0], PETITION)


def test_one_foreign_stanza_among_three_does_not_open(org_keys: Keys) -> None:
    # Three recipients: replacing only the second stanza with the second stanza of
    # another contact leaves the first key's path intact, yet the header AAD catches it.
    recipients = pubs(org_keys)
    one = seal_contact("one@example.org", recipients, PETITION)
    two = seal_contact("two@example.org", recipients, PETITION)
    second = slice(FIRST_STANZA + STANZA, FIRST_STANZA + 2 * STANZA)
    mixed = bytearray(one)
    mixed[second] = two[second]
    with pytest.raises(errors.ContactDoesNotOpen):
        open_contact(bytes(mixed), org_keys[0], PETITION)


def test_reordered_stanzas_do_not_open(org_keys: Keys) -> None:
    sealed = seal_contact("a", pubs(org_keys[:2]), PETITION)
    first = sealed[FIRST_STANZA : FIRST_STANZA + STANZA]
    second = sealed[FIRST_STANZA + STANZA : FIRST_STANZA + 2 * STANZA]
    swapped = sealed[:FIRST_STANZA] + second + first + sealed[FIRST_STANZA + 2 * STANZA :]
    for key in org_keys[:2]:
        with pytest.raises(errors.ContactDoesNotOpen):
            open_contact(swapped, key, PETITION)


def test_dropped_stanza_does_not_open(org_keys: Keys) -> None:
    sealed = seal_contact("a", pubs(org_keys[:2]), PETITION)
    dropped = sealed[:N_OFFSET] + b"\x01" + sealed[FIRST_STANZA + STANZA :]
    assert len(dropped) == sealed_size(1)
    with pytest.raises(errors.ContactDoesNotOpen):
        open_contact(dropped, org_keys[1], PETITION)


# --- negative: damage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, errors.SealedContactError),  # magic
        (3, errors.SealedContactError),  # magic
        (N_OFFSET, errors.SealedContactError),  # recipient count: size no longer matches
        (FIRST_STANZA, errors.NotSealedToThisKey),  # key id
        (FIRST_STANZA + 16, errors.ContactDoesNotOpen),  # HPKE KEM output
        (FIRST_STANZA + STANZA - 1, errors.ContactDoesNotOpen),  # HPKE tag
        (FIRST_STANZA + STANZA, errors.ContactDoesNotOpen),  # payload
        (2229 - 1, errors.ContactDoesNotOpen),  # payload tag
    ],
)
def test_flipped_byte_never_opens(org_keys: Keys, index: int, expected: type[Exception]) -> None:
    sealed = bytearray(seal_contact("alice@example.org", pubs(org_keys[:1]), PETITION))
    sealed[index] ^= 0x01
    with pytest.raises(expected):
        open_contact(bytes(sealed), org_keys[0], PETITION)


@pytest.mark.parametrize("size", [0, 3, 4, 5, 100, FIRST_STANZA + STANZA, 2228])
def test_truncated_is_damaged(org_keys: Keys, size: int) -> None:
    sealed = seal_contact("alice@example.org", pubs(org_keys[:1]), PETITION)
    with pytest.raises(errors.SealedContactError) as info:
        open_contact(sealed[:size], org_keys[0], PETITION)
    assert type(info.value) is errors.SealedContactError


def test_extended_is_damaged(org_keys: Keys) -> None:
    sealed = seal_contact("alice@example.org", pubs(org_keys[:1]), PETITION)
    with pytest.raises(errors.SealedContactError, match="2230 bytes where 2229"):
        open_contact(sealed + b"\x00", org_keys[0], PETITION)


def test_zero_recipients_is_damaged(org_keys: Keys) -> None:
    with pytest.raises(errors.SealedContactError, match="names no organizer key"):
        open_contact(labels.SEALED_CONTACT_MAGIC + b"\x00" + bytes(1040), org_keys[0], PETITION)


def test_repeated_key_id_is_damaged(org_keys: Keys) -> None:
    sealed = seal_contact("a", pubs(org_keys[:2]), PETITION)
    stanza = sealed[FIRST_STANZA : FIRST_STANZA + STANZA]
    doubled = sealed[:FIRST_STANZA] + stanza + stanza + sealed[FIRST_STANZA + 2 * STANZA :]
    with pytest.raises(errors.SealedContactError, match="appears twice"):
        open_contact(doubled, org_keys[0], PETITION)


def test_authentic_but_badly_padded_contact_does_not_open(org_keys: Keys) -> None:
    # Anyone with the public key can build a well-sealed blob around a bad block.
    data_key = ChaCha20Poly1305.generate_key()
    pub = org_keys[0].public_key()
    header = (
        labels.SEALED_CONTACT_MAGIC
        + b"\x01"
        + pub.key_id
        + seal.SUITE.encrypt(data_key, pub.hpke_key(), info=seal.hpke_info(PETITION))
    )
    block = b"\x00\x01a" + bytes(1020) + b"\x01"
    payload = ChaCha20Poly1305(data_key).encrypt(
        seal.PAYLOAD_NONCE, block, seal.payload_aad(PETITION, header)
    )
    with pytest.raises(errors.ContactDoesNotOpen, match="malformed"):
        open_contact(header + payload, org_keys[0], PETITION)


# --- programming errors ----------------------------------------------------------------------


def test_recipient_list_is_validated(org_keys: Keys) -> None:
    with pytest.raises(ValueError, match=r"1\.\.255"):
        seal_contact("a", [], PETITION)
    one = org_keys[0].public_key()
    with pytest.raises(ValueError, match="only once"):
        seal_contact("a", [one, org_keys[1].public_key(), one], PETITION)


def test_petition_id_is_validated(org_keys: Keys) -> None:
    with pytest.raises(ValueError, match="petition id"):
        seal_contact("a", pubs(org_keys[:1]), "")
    with pytest.raises(ValueError, match="petition id"):
        seal_contact("a", pubs(org_keys[:1]), "a\x00b")


# --- a petition's contacts together: damaged, or sealed to other keys ------------------------


def _flipped(sealed: bytes, index: int) -> bytes:
    damaged = bytearray(sealed)
    damaged[index] ^= 0x01
    return bytes(damaged)


def test_a_contact_that_lost_the_key_others_name_is_damaged(org_keys: Keys) -> None:
    sealed = [seal_contact(f"c{i}", pubs(org_keys[:2]), PETITION) for i in range(3)]
    sealed[1] = _flipped(sealed[1], FIRST_STANZA)  # the first key's id, in contact 2
    with pytest.raises(errors.ContactDamaged) as info:
        open_contacts(sealed, org_keys[0], PETITION)
    assert not isinstance(info.value, errors.NotSealedToThisKey)
    assert info.value.message.startswith("Contact 2 of 3 is damaged: it does not name the given")
    assert "try another" not in info.value.message


@pytest.mark.parametrize(
    "index",
    [FIRST_STANZA + 16, FIRST_STANZA + STANZA + STANZA, 1045 + 2 * STANZA - 1],
    ids=["hpke", "payload", "payload-tag"],
)
def test_a_contact_that_fails_authentication_with_its_key_is_damaged(
    org_keys: Keys, index: int
) -> None:
    sealed = [seal_contact(f"c{i}", pubs(org_keys[:2]), PETITION) for i in range(3)]
    sealed[2] = _flipped(sealed[2], index)
    with pytest.raises(errors.ContactDamaged, match=r"^Contact 3 of 3: This contact is damaged"):
        open_contacts(sealed, org_keys[0], PETITION)


def test_a_malformed_contact_says_it_is_damaged(org_keys: Keys) -> None:
    sealed = [seal_contact(f"c{i}", pubs(org_keys[:1]), PETITION) for i in range(2)]
    with pytest.raises(errors.SealedContactError, match=r"^Contact 1 of 2: .* damaged"):
        open_contacts([sealed[0][:-1], sealed[1]], org_keys[0], PETITION)


def test_contacts_none_of_which_name_the_key_send_to_another_key(org_keys: Keys) -> None:
    sealed = [seal_contact(f"c{i}", pubs(org_keys[:2]), PETITION) for i in range(3)]
    with pytest.raises(errors.NotSealedToThisKey, match=r"None of the 3 contacts.*another"):
        open_contacts(sealed, org_keys[2], PETITION)


def test_a_petition_s_contacts_open_together_in_their_order(org_keys: Keys) -> None:
    sealed = [seal_contact(f"c{i}", pubs(org_keys[:2]), PETITION) for i in range(3)]
    opened: list[int] = []
    contacts = open_contacts(sealed, org_keys[1], PETITION, lambda: opened.append(1))
    assert contacts == ["c0", "c1", "c2"]
    assert len(opened) == 3
    assert open_contacts([], org_keys[0], PETITION) == []
