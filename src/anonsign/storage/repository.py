"""Reading and writing petitions, signatures and sealed contacts.

Callers get domain objects, never rows. Recording a signature is one upsert whose
conflict branch rewrites the row, so a repeated signature does the same kind of write
(and the same fsync on commit) as a new one: the time of the answer does not tell
whether the identifier had signed before (SECURITY.md, "no membership oracle").
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keys import OrganizerPublicKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import (
    SLUG_PATTERN,
    Petition,
    PetitionState,
    PetitionText,
    Recipient,
)
from anonsign.errors import PetitionClosed, PetitionExists, PetitionNotFound
from anonsign.storage.models import (
    PetitionRow,
    PetitionTextRow,
    RecipientRow,
    SealedContactRow,
    SignatureRow,
)

CONTACT_ID_SIZE = 16


class Repository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- petitions -------------------------------------------------------------------

    def add_petition(self, petition: Petition, wrapped_pepper: bytes) -> None:
        if self.session.scalar(select(PetitionRow.id).where(PetitionRow.slug == petition.slug)):
            raise PetitionExists(f"A petition named {petition.slug!r} already exists.")
        self.session.add(
            PetitionRow(
                id=petition.id,
                slug=petition.slug,
                title=petition.title,
                text=petition.text,
                identifier_kind=petition.identifier_kind.value,
                phone_region=petition.phone_region,
                state=petition.state.value,
                salt=petition.salt,
                wrapped_pepper=wrapped_pepper,
                argon2_time_cost=petition.argon2.time_cost,
                argon2_memory_kib=petition.argon2.memory_kib,
                argon2_parallelism=petition.argon2.parallelism,
                log_origin=petition.log_origin,
            )
        )
        for version in petition.translations:
            self.session.add(
                PetitionTextRow(
                    petition_id=petition.id,
                    lang=version.lang,
                    title=version.title,
                    text=version.text,
                )
            )
        for recipient in petition.recipients:
            self.session.add(
                RecipientRow(
                    petition_id=petition.id,
                    key_id=recipient.key.key_id,
                    name=recipient.name,
                    public_key=recipient.key.to_text(),
                )
            )
        self.session.flush()

    def _row(self, slug: str, *, lock: str | None = None) -> PetitionRow:
        """The petition's row; ``lock`` is "close" (exclusive) or "publish".

        On PostgreSQL, closing takes ``FOR UPDATE``, publishing ``FOR NO KEY UPDATE``
        (publishers take turns but do not block signers, who take ``FOR KEY SHARE``),
        so a signature can never land after the final checkpoint. On SQLite the write
        transaction's ``BEGIN IMMEDIATE`` already serializes all three.
        """
        if not SLUG_PATTERN.fullmatch(slug):
            # Never hand arbitrary text (NUL, megabytes) to the database as a key.
            raise PetitionNotFound(f"No petition is named {slug[:80]!r}.")
        query = select(PetitionRow).where(PetitionRow.slug == slug)
        if lock == "close":
            query = query.with_for_update()
        elif lock == "publish":
            query = query.with_for_update(key_share=True)
        row = self.session.scalar(query)
        if row is None:
            raise PetitionNotFound(f"No petition is named {slug!r}.")
        return row

    def _petition(self, row: PetitionRow) -> Petition:
        recipients = self.session.scalars(
            select(RecipientRow)
            .where(RecipientRow.petition_id == row.id)
            .order_by(RecipientRow.name, RecipientRow.key_id)
        ).all()
        return Petition(
            id=row.id,
            slug=row.slug,
            title=row.title,
            text=row.text,
            identifier_kind=IdentifierKind(row.identifier_kind),
            phone_region=row.phone_region,
            state=PetitionState(row.state),
            salt=row.salt,
            argon2=Argon2Params(
                time_cost=row.argon2_time_cost,
                memory_kib=row.argon2_memory_kib,
                parallelism=row.argon2_parallelism,
            ),
            recipients=tuple(
                Recipient(name=r.name, key=OrganizerPublicKey.from_text(r.public_key))
                for r in recipients
            ),
            log_origin=row.log_origin,
            translations=tuple(
                PetitionText(lang=t.lang, title=t.title, text=t.text)
                for t in self.session.scalars(
                    select(PetitionTextRow)
                    .where(PetitionTextRow.petition_id == row.id)
                    .order_by(PetitionTextRow.lang)
                )
            ),
        )

    def petition(self, slug: str, *, lock: str | None = None) -> Petition:
        return self._petition(self._row(slug, lock=lock))

    def petition_with_pepper(self, slug: str) -> tuple[Petition, bytes | None]:
        row = self._row(slug)
        return self._petition(row), row.wrapped_pepper

    def petitions(self, *, open_only: bool = False) -> list[Petition]:
        query = select(PetitionRow).order_by(PetitionRow.slug)
        if open_only:
            query = query.where(PetitionRow.state == PetitionState.OPEN.value)
        return [self._petition(row) for row in self.session.scalars(query)]

    def close_petition(self, slug: str) -> Petition:
        """Mark closed and forget the pepper (SECURITY.md: closing ends all testing)."""
        row = self._row(slug, lock="close")
        row.state = PetitionState.CLOSED.value
        row.wrapped_pepper = None
        self.session.flush()
        return self._petition(row)

    # --- signatures and contacts -----------------------------------------------------

    def record_signature(
        self, petition_id: str, dedup_key: bytes, sealed_contact: bytes | None
    ) -> None:
        """Keep one signature; a repeat rewrites its row so the work looks the same."""
        state = self.session.scalar(
            select(PetitionRow.state)
            .where(PetitionRow.id == petition_id)
            .with_for_update(read=True, key_share=True)
        )
        if state is None:
            raise PetitionNotFound()
        if state != PetitionState.OPEN.value:
            raise PetitionClosed()
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(SignatureRow).values(petition_id=petition_id, dedup_key=dedup_key)
        stmt = stmt.on_conflict_do_update(
            index_elements=[SignatureRow.petition_id, SignatureRow.dedup_key],
            set_={"dedup_key": stmt.excluded.dedup_key},
        )
        self.session.execute(stmt)
        if sealed_contact is not None:
            # A contact left with a repeated signature is kept as well: the signer may be
            # giving a new way to reach them, and keeping it does not depend on the past.
            self.session.add(
                SealedContactRow(
                    petition_id=petition_id,
                    id=secrets.token_bytes(CONTACT_ID_SIZE),
                    sealed=sealed_contact,
                )
            )

    def count_signatures(self, petition_id: str) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(SignatureRow)
                .where(SignatureRow.petition_id == petition_id)
            )
            or 0
        )

    def count_contacts(self, petition_id: str) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(SealedContactRow)
                .where(SealedContactRow.petition_id == petition_id)
            )
            or 0
        )

    def sealed_contacts(self, petition_id: str) -> Iterator[bytes]:
        """All sealed contacts, in the order of their random ids (no arrival order)."""
        query = (
            select(SealedContactRow.sealed)
            .where(SealedContactRow.petition_id == petition_id)
            .order_by(SealedContactRow.id)
            .execution_options(yield_per=1000)
        )
        yield from self.session.scalars(query)
