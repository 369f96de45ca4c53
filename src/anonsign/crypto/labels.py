"""Versioned domain-separation labels, in one place.

Every key derivation, MAC, AEAD and HPKE context in anonsign starts from one of these
constants, so a value made for one purpose can never be accepted for another, and a
format change is a new label (``.../v2``) rather than a silent reinterpretation.
Changing an existing label breaks every stored value made under it: add, never edit.
"""

from __future__ import annotations

#: HMAC-SHA256 input prefix for the dedup key (pepper-keyed, before Argon2id).
DEDUP_HMAC = b"anonsign/dedup/hmac/v1"

#: Associated data when a petition's pepper is wrapped under the server master key.
PEPPER_WRAP = b"anonsign/pepper-wrap/v1"

#: HPKE ``info`` when a contact's data key is sealed to one organizer key.
CONTACT_HPKE_INFO = b"anonsign/contact/data-key/v1"

#: Associated-data prefix of the AEAD that encrypts the padded contact under its data key.
CONTACT_PAYLOAD = b"anonsign/contact/payload/v1"

#: Prefix hashed with an organizer public key to name it (the key id in sealed contacts).
ORGANIZER_KEY_ID = b"anonsign/organizer-key-id/v1"

#: First line of a passphrase-protected organizer secret key file.
SECRET_KEY_FILE_HEADER = "anonsign-secret-key-v1"  # noqa: S105 -- a format marker, not a secret

#: Type prefix of an organizer public key in its one-line text form.
PUBLIC_KEY_PREFIX = "anonsign-organizer-v1:"

#: Associated data of the AEAD that protects an organizer secret key under its passphrase.
SECRET_KEY_FILE_AEAD = b"anonsign/secret-key-file/v1"

#: Magic bytes at the start of one sealed contact.
SEALED_CONTACT_MAGIC = b"ASC1"

#: First line of a contacts export file.
CONTACTS_EXPORT_HEADER = "anonsign-contacts-export-v1"

#: First line of the server master key sealed under the operator's unlock passphrase.
SEALED_MASTER_KEY_HEADER = "anonsign-sealed-master-key-v1"

#: Associated data of the AEAD that seals the master key under the unlock passphrase.
SEALED_MASTER_KEY_AEAD = b"anonsign/sealed-master-key/v1"

#: HKDF ``info`` that turns the instance's store key into the SQLCipher page key.
STORE_SQLCIPHER_KEY = b"anonsign/store/sqlcipher-key/v1"

#: First line of the server keys (master key and store key) under the unlock passphrase.
SEALED_SERVER_KEYS_HEADER = "anonsign-sealed-master-key-v2"

#: Associated data of the AEAD that seals the server keys (v2) under the unlock passphrase.
SEALED_SERVER_KEYS_AEAD = b"anonsign/sealed-master-key/v2"

#: HMAC-SHA256 input prefix for a rate-limit bucket name (a peer address or Tor circuit
#: under a random key held only in one process's memory; anonsign.crypto.buckets).
RATELIMIT_BUCKET = b"anonsign/ratelimit/bucket/v1"

#: HKDF ``info`` that turns the instance's session key into the sign-form token's MAC key.
FORM_TOKEN_KEY = b"anonsign/form-token/v1"
