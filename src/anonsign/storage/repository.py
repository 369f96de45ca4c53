"""Reading and writing petitions, signatures and sealed contacts.

Callers get domain objects, never rows. Recording a signature is one insert of a
random-keyed pending row, whether the identifier is new, pending or published: the same
write, page for page, and the same fsync on commit, so neither the time of the answer
nor the database's write pattern tells whether the identifier had signed before
(SECURITY.md, "no membership oracle"). The publisher folds repeats away.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Iterator

from sqlalchemy import ColumnElement, exists, func, select, text, update
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
    LogLeafRow,
    PendingContactRow,
    PendingSignatureRow,
    PetitionRow,
    PetitionTextRow,
    RecipientRow,
    SealedContactRow,
)

ROW_ID_SIZE = 16
#: Any constant: PostgreSQL's transaction-scoped advisory lock that serializes rotations.
_ROTATION_LOCK = 0x616E6F6E7369676E  # "anonsign"


@functools.lru_cache(maxsize=1024)
def _public_key(text: str) -> OrganizerPublicKey:
    """An organizer key as stored, checked once per process rather than on every read.

    Checking a key costs an X25519 exchange and an ML-KEM load (web.public reads the
    petition on every page and post); the stored text cannot change under its own value,
    and a key that failed the check was never stored (``petition create`` checks it).
    """
    return OrganizerPublicKey.from_text(text)


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
                Recipient(name=r.name, key=_public_key(r.public_key)) for r in recipients
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

    def wrapped_pepper(self, petition_id: str) -> tuple[PetitionState, bytes | None]:
        """The petition's state and wrapped pepper, without the rest of the petition."""
        row = self.session.execute(
            select(PetitionRow.state, PetitionRow.wrapped_pepper).where(
                PetitionRow.id == petition_id
            )
        ).one_or_none()
        if row is None:
            raise PetitionNotFound()
        return PetitionState(row.state), row.wrapped_pepper

    def petitions(self, *, open_only: bool = False) -> list[Petition]:
        query = select(PetitionRow).order_by(PetitionRow.slug)
        if open_only:
            query = query.where(PetitionRow.state == PetitionState.OPEN.value)
        return [self._petition(row) for row in self.session.scalars(query)]

    def lock_key_rotation(self) -> None:
        """Take the lock that lets one process at a time replace the master key.

        SQLite's ``BEGIN IMMEDIATE`` already serializes every writer; PostgreSQL closes of
        two different petitions would not otherwise meet on any row.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ROTATION_LOCK})

    def some_wrapped_pepper(self) -> tuple[str, bytes] | None:
        """One open petition's (id, wrapped pepper): which master key the database uses."""
        row = self.session.execute(
            select(PetitionRow.id, PetitionRow.wrapped_pepper)
            .where(PetitionRow.wrapped_pepper.is_not(None))
            .limit(1)
        ).first()
        if row is None or row[1] is None:
            return None
        return row[0], bytes(row[1])

    def rewrap_peppers(self, rewrap: Callable[[str, bytes], bytes]) -> int:
        """Replace every stored wrapped pepper by ``rewrap(petition_id, wrapped)``."""
        rows = self.session.execute(
            select(PetitionRow.id, PetitionRow.wrapped_pepper).where(
                PetitionRow.wrapped_pepper.is_not(None)
            )
        ).all()
        for petition_id, wrapped in rows:
            assert wrapped is not None  # selected so
            self.session.execute(
                update(PetitionRow)
                .where(PetitionRow.id == petition_id)
                .values(wrapped_pepper=rewrap(petition_id, bytes(wrapped)))
            )
        return len(rows)

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
        """Keep one submission: the same insert whether or not it signed before."""
        state = self.session.scalar(
            select(PetitionRow.state)
            .where(PetitionRow.id == petition_id)
            .with_for_update(read=True, key_share=True)
        )
        if state is None:
            raise PetitionNotFound()
        if state != PetitionState.OPEN.value:
            raise PetitionClosed()
        self.session.add(
            PendingSignatureRow(
                petition_id=petition_id,
                id=secrets.token_bytes(ROW_ID_SIZE),
                dedup_key=dedup_key,
            )
        )
        if sealed_contact is not None:
            # A contact left with a repeated signature is kept as well: the signer may be
            # giving a new way to reach them, and keeping it does not depend on the past.
            self.session.add(
                PendingContactRow(
                    petition_id=petition_id,
                    id=secrets.token_bytes(ROW_ID_SIZE),
                    sealed=sealed_contact,
                )
            )
        self.session.flush()

    def count_signatures(self, petition_id: str) -> int:
        """Distinct signers: the published entries and the new ones waiting for a batch."""
        published = self.session.scalar(
            select(func.count())
            .select_from(LogLeafRow)
            .where(LogLeafRow.petition_id == petition_id)
        )
        return int(published or 0) + count_new_pending(self.session, petition_id)

    def count_contacts(self, petition_id: str) -> int:
        return sum(
            self.session.scalar(
                select(func.count()).select_from(table).where(table.petition_id == petition_id)
            )
            or 0
            for table in (SealedContactRow, PendingContactRow)
        )

    def sealed_contacts(self, petition_id: str) -> Iterator[bytes]:
        """All sealed contacts, published batches and pending ones, by random id."""
        for table in (SealedContactRow, PendingContactRow):
            query = (
                select(table.sealed)
                .where(table.petition_id == petition_id)
                .order_by(table.id)
                .execution_options(yield_per=1000)
            )
            yield from self.session.scalars(query)


def new_pending(petition_id: str) -> ColumnElement[bool]:
    """The pending rows of a petition whose dedup key is not in its log yet."""
    return (PendingSignatureRow.petition_id == petition_id) & ~exists().where(
        LogLeafRow.petition_id == PendingSignatureRow.petition_id,
        LogLeafRow.entry == PendingSignatureRow.dedup_key,
    )


def count_new_pending(session: Session, petition_id: str) -> int:
    """Distinct dedup keys waiting for the next batch that the log does not hold yet."""
    return int(
        session.scalar(
            select(func.count(PendingSignatureRow.dedup_key.distinct())).where(
                new_pending(petition_id)
            )
        )
        or 0
    )
