"""Tables. Read SECURITY.md "What is stored" before adding a column.

Every table is keyed by random or derived values (no autoincrement, no timestamps), and
on SQLite is ``WITHOUT ROWID`` so the file's physical order follows the key, not the
arrival of rows: a seized database does not tell who signed before whom.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: SQLite-only table option; other dialects ignore it.
NO_ROWID = {"sqlite_with_rowid": False}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PetitionRow(Base):
    """A petition and the secrets its dedup keys depend on."""

    __tablename__ = "petitions"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'closed')", name="state"),
        CheckConstraint("identifier_kind IN ('email', 'phone', 'text')", name="identifier_kind"),
        NO_ROWID,
    )

    #: Random 128-bit hex: bound into every sealed contact and pepper wrap.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    identifier_kind: Mapped[str] = mapped_column(String(8))
    phone_region: Mapped[str | None] = mapped_column(String(2))
    state: Mapped[str] = mapped_column(String(8))
    salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    #: The pepper under the server master key; NULL once the petition is closed, after
    #: which no dedup key can be recomputed by anyone.
    wrapped_pepper: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    # The Argon2id cost is fixed per petition at creation: changing the server's
    # default later must not change the dedup key of an identifier that already signed.
    argon2_time_cost: Mapped[int] = mapped_column(Integer)
    argon2_memory_kib: Mapped[int] = mapped_column(Integer)
    argon2_parallelism: Mapped[int] = mapped_column(Integer)
    #: The log's origin line, ``<log name>/<slug>``, fixed at creation like the cost.
    log_origin: Mapped[str] = mapped_column(String(200))


class PetitionTextRow(Base):
    """The petition's title and text in one more language."""

    __tablename__ = "petition_texts"
    __table_args__ = (NO_ROWID,)

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)


class RecipientRow(Base):
    """An organizer public key that every contact of the petition is sealed to."""

    __tablename__ = "petition_recipients"
    __table_args__ = (NO_ROWID,)

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    key_id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)


class PendingSignatureRow(Base):
    """One accepted submission that is not in the public log yet.

    Every submission adds one row under a random id, whether its dedup key is new,
    already pending or already published: the three do the same write, page for page
    (SECURITY.md, "no membership oracle"). Duplicates are folded when the batch is
    published, under the publisher's lock, and the log's unique index on entries is the
    final word. Publishing deletes the batch's rows (``secure_delete`` zeroes them), so
    the arrival order these pages keep lasts only until the next batch.
    """

    __tablename__ = "pending_signatures"
    __table_args__ = (NO_ROWID,)

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    #: Random, so the row's place in the B-tree says nothing about when it came.
    id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    dedup_key: Mapped[bytes] = mapped_column(LargeBinary(32))


class PendingContactRow(Base):
    """A sealed contact left since the last batch; moved to ``sealed_contacts`` with it."""

    __tablename__ = "pending_contacts"
    __table_args__ = (NO_ROWID,)

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class SealedContactRow(Base):
    """A contact sealed to the petition's organizer keys; not linked to any signature.

    Rows arrive a batch at a time, in the order of their random ids, so a page of this
    table shows at most which batch a contact came with, never its place in it.
    """

    __tablename__ = "sealed_contacts"
    __table_args__ = (NO_ROWID,)

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    #: Random, so rows sort in no meaningful order.
    id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class LogLeafRow(Base):
    """One published entry of a petition's log (a dedup key), at its index."""

    __tablename__ = "log_leaves"
    __table_args__ = (
        Index("ix_log_leaves_entry", "petition_id", "entry", unique=True),
        NO_ROWID,
    )

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogNodeRow(Base):
    """The hash of one complete subtree (level 0: leaf hashes); proofs read O(log n) of them."""

    __tablename__ = "log_nodes"
    __table_args__ = (NO_ROWID,)

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class CheckpointRow(Base):
    """A signed checkpoint of a petition's log."""

    __tablename__ = "checkpoints"
    __table_args__ = (NO_ROWID,)

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: The C2SP signed note, exactly as published.
    note: Mapped[str] = mapped_column(Text)
    #: When the batch was published, rounded down to the hour: shown as "counted on
    #: <day>", and coarse so it says nothing about any one signer.
    published_hour: Mapped[int] = mapped_column(BigInteger)


class CosignatureRow(Base):
    """A witness's cosignature line on the checkpoint of one size (anonsign.witness)."""

    __tablename__ = "cosignatures"
    __table_args__ = (NO_ROWID,)

    petition_id: Mapped[str] = mapped_column(ForeignKey("petitions.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key_id: Mapped[bytes] = mapped_column(LargeBinary(4), primary_key=True)
    witness: Mapped[str] = mapped_column(Text)
    #: The signed-note line as the witness answered it, with its newline.
    line: Mapped[str] = mapped_column(Text)


class UsedFormNonceRow(Base):
    """The nonce of a sign-form token that was posted, kept until the token expires.

    A token is accepted once (crypto.form_token); this is the memory that makes it so,
    shared by every worker and host that uses the database. It holds a random nonce and
    an hour, nothing else: no key shared with any signature (a nonce is used before the
    identifier is read, in a transaction of its own, whatever the identifier turns out to
    be), no time finer than the hour, and random keys so the B-tree follows no order.
    Rows are deleted once their hour has come (the token is too old to be accepted).
    """

    __tablename__ = "used_form_nonces"
    __table_args__ = (NO_ROWID,)

    #: 128 random bits from the token; the primary key, so a second use is refused.
    nonce: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    #: Hours since the epoch: the first whole hour in which the token can no longer be
    #: accepted, rounded up so that forgetting the nonce then is always safe.
    expires_hour: Mapped[int] = mapped_column(BigInteger)
