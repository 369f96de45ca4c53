"""The use cases the web layer and the CLI share: create, sign, close, export.

This is where the server's secrets meet storage: a petition's pepper is unwrapped with
the master key only for the moment a signature is prepared, and the costly Argon2id
step runs outside any database transaction so signers do not queue on a lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from anonsign.config import Settings
from anonsign.crypto.dedup import new_pepper, new_salt
from anonsign.crypto.master import unwrap_pepper, wrap_pepper
from anonsign.crypto.seal import MAX_RECIPIENTS
from anonsign.domain.identifiers import IdentifierKind, validate_region
from anonsign.domain.petitions import (
    InvalidPetition,
    Petition,
    PetitionState,
    Recipient,
    validate_slug,
    validate_text,
    validate_title,
)
from anonsign.domain.signing import prepare_signature
from anonsign.errors import PetitionClosed
from anonsign.instance import load_master_key
from anonsign.storage.db import Database
from anonsign.storage.migrate import upgrade
from anonsign.storage.repository import Repository


@dataclass(frozen=True)
class PetitionSummary:
    petition: Petition
    signatures: int
    contacts: int


class Service:
    def __init__(self, settings: Settings, db: Database, master_key: bytes) -> None:
        self.settings = settings
        self.db = db
        self._master_key = master_key

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = False) -> Service:
        """Connect to the instance's database with its master key."""
        master_key = load_master_key(settings)
        db = Database(settings.database_url)
        if migrate:
            upgrade(db.engine)
        return cls(settings, db, master_key)

    def close_connections(self) -> None:
        self.db.dispose()

    # --- organizer -------------------------------------------------------------------

    def create_petition(
        self,
        *,
        slug: str,
        title: str,
        text: str,
        identifier_kind: IdentifierKind,
        recipients: Sequence[Recipient],
        phone_region: str | None = None,
    ) -> Petition:
        if not recipients:
            raise InvalidPetition(
                "A petition needs at least one organizer public key (--recipient NAME.pub)."
            )
        if identifier_kind is IdentifierKind.PHONE:
            phone_region = validate_region(phone_region) if phone_region else None
        elif phone_region:
            raise InvalidPetition("--region only applies to petitions signed with a phone number.")
        if len(recipients) > MAX_RECIPIENTS:
            raise InvalidPetition(f"A petition can have at most {MAX_RECIPIENTS} organizer keys.")
        keys = {r.key.key_id for r in recipients}
        if len(keys) != len(recipients):
            raise InvalidPetition("The same organizer key was given twice.")
        petition = Petition(
            id=secrets.token_hex(16),
            slug=validate_slug(slug),
            title=validate_title(title),
            text=validate_text(text),
            identifier_kind=identifier_kind,
            phone_region=phone_region,
            state=PetitionState.OPEN,
            salt=new_salt(),
            argon2=self.settings.argon2,
            recipients=tuple(recipients),
        )
        wrapped = wrap_pepper(self._master_key, petition.id, new_pepper())
        with self.db.writing() as session:
            Repository(session).add_petition(petition, wrapped)
        return petition

    def petitions(self, *, open_only: bool = False) -> list[Petition]:
        with self.db.reading() as session:
            return Repository(session).petitions(open_only=open_only)

    def summaries(self) -> list[PetitionSummary]:
        with self.db.reading() as session:
            repo = Repository(session)
            return [
                PetitionSummary(p, repo.count_signatures(p.id), repo.count_contacts(p.id))
                for p in repo.petitions()
            ]

    def petition(self, slug: str) -> Petition:
        with self.db.reading() as session:
            return Repository(session).petition(slug)

    def close(self, slug: str) -> Petition:
        with self.db.writing() as session:
            return Repository(session).close_petition(slug)

    def sealed_contacts(self, slug: str) -> tuple[Petition, list[bytes]]:
        with self.db.reading() as session:
            repo = Repository(session)
            petition = repo.petition(slug)
            return petition, list(repo.sealed_contacts(petition.id))

    # --- signer ----------------------------------------------------------------------

    def sign(self, slug: str, identifier: str, contact: str) -> Petition:
        """Accept a signature; identical outcome whether or not it was already there.

        Raises PetitionNotFound, PetitionClosed or InvalidInput (with a message for the
        signer). Returns only after the signature is durably committed.
        """
        with self.db.reading() as session:
            petition, wrapped = Repository(session).petition_with_pepper(slug)
        if not petition.is_open or wrapped is None:
            raise PetitionClosed()
        pepper = unwrap_pepper(self._master_key, petition.id, wrapped)
        prepared = prepare_signature(petition, pepper, identifier, contact)
        with self.db.writing() as session:
            Repository(session).record_signature(
                petition.id, prepared.dedup_key, prepared.sealed_contact
            )
        return petition
