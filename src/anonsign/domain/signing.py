"""Turning what a signer typed into what the server keeps.

The order matters: every check that can refuse the input runs before the expensive
Argon2id step, so a malformed submission costs the server almost nothing, and its
error depends only on the input's syntax, never on who has signed (no oracle).
"""

from __future__ import annotations

from dataclasses import dataclass

from anonsign.crypto import dedup
from anonsign.crypto.seal import pad_contact, seal_contact
from anonsign.domain.identifiers import normalize_contact, normalize_identifier
from anonsign.domain.petitions import Petition


@dataclass(frozen=True)
class PreparedSignature:
    """What storage keeps for one submission: a dedup key and maybe a sealed contact."""

    dedup_key: bytes
    sealed_contact: bytes | None


def prepare_signature(
    petition: Petition, pepper: bytes, identifier: str, contact: str
) -> PreparedSignature:
    """Validate, then derive the dedup key and seal the contact. Raises InvalidInput."""
    normalized = normalize_identifier(
        petition.identifier_kind, identifier, region=petition.phone_region
    )
    contact_text = normalize_contact(contact)
    if contact_text is not None:
        pad_contact(contact_text)  # refuses an over-long contact before the costly part
    # Through the module, so that a test counting ``dedup.dedup_key`` sees every call.
    key = dedup.dedup_key(
        pepper=pepper,
        salt=petition.salt,
        kind=petition.identifier_kind.value,
        normalized=normalized,
        params=petition.argon2,
    )
    sealed = None
    if contact_text is not None:
        sealed = seal_contact(contact_text, [r.key for r in petition.recipients], petition.id)
    return PreparedSignature(dedup_key=key, sealed_contact=sealed)
