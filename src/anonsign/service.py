"""The use cases the web layer and the CLI share: create, sign, close, export.

This is where the server's secrets meet storage: a petition's pepper is unwrapped with
the master key only for the moment a signature is prepared, and the costly Argon2id
step runs outside any database transaction so signers do not queue on a lock.

Closing a petition replaces the master key (SECURITY.md, "close reaches every
process"): the open petitions' peppers are rewrapped under a new one in the same
transaction that forgets the closed petition's pepper, so the master key any process
held before the close opens nothing that is still stored. A process that still holds
the old key finds the new one in the instance's key files on its next signature.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

from anonsign.audit.merkle import consistency_proof, inclusion_proof
from anonsign.audit.tiles import TILE_WIDTH, TileRef, encode_entry_bundle, tile_width
from anonsign.config import Settings
from anonsign.crypto.dedup import new_pepper, new_salt
from anonsign.crypto.master import ServerKeys, unwrap_pepper, wrap_pepper
from anonsign.crypto.notes import LogSigner
from anonsign.crypto.seal import MAX_RECIPIENTS
from anonsign.domain.identifiers import IdentifierKind, validate_region
from anonsign.domain.petitions import (
    InvalidPetition,
    Petition,
    PetitionState,
    PetitionText,
    Recipient,
    validate_slug,
    validate_text,
    validate_title,
)
from anonsign.domain.signing import prepare_signature
from anonsign.errors import AnonsignError, MasterKeyMismatch, NotInitialized, PetitionClosed
from anonsign.instance import (
    abandon_rotation,
    finish_rotation,
    load_log_signer,
    load_server_keys,
    rotation_pending,
    stage_rotation,
)
from anonsign.publisher import SECONDS_PER_HOUR, PublishPolicy, publish
from anonsign.storage.db import Database, sqlite_path
from anonsign.storage.encrypt import StoreState, store_state
from anonsign.storage.log_store import LogStore, StoredCheckpoint
from anonsign.storage.migrate import upgrade
from anonsign.storage.repository import Repository, count_new_pending
from anonsign.storage.used_nonces import UsedNonces
from anonsign.witness.client import (
    WitnessEndpoint,
    WitnessOutcome,
    load_witnesses,
    offer_checkpoint,
)

#: Tables a batch drains: rewritten after each batch on PostgreSQL (SQLite zeroes in place).
PENDING_TABLES = ("pending_signatures", "pending_contacts")

#: Most leaves one request may ask for: bounded memory per request, any log size.
MAX_LEAVES_PAGE = 1000
#: Seconds before the background publisher asks a witness again for a checkpoint it has
#: not cosigned (down, or refusing).
WITNESS_RETRY_SECONDS = 3600.0

log = logging.getLogger("anonsign.witness")


class LogQueryError(AnonsignError):
    """This log request is not valid."""


@dataclass(frozen=True)
class PetitionSummary:
    petition: Petition
    #: Distinct signers: in the public log, and waiting for the next batch.
    signatures: int
    contacts: int
    #: Of ``signatures``, those not yet in the public log (published in batches).
    waiting: int = 0

    @property
    def published(self) -> int:
        return self.signatures - self.waiting


@dataclass(frozen=True)
class PublishStatus:
    """Why a petition's pending signatures are, or are not yet, due for the public log."""

    #: Distinct new signatures waiting for a batch.
    waiting: int
    #: The size of the latest checkpoint.
    published: int
    #: When the interval lets the next checkpoint be signed (seconds since the epoch).
    interval_ends: float


class Service:
    def __init__(
        self, settings: Settings, db: Database, keys: ServerKeys, log_signer: LogSigner
    ) -> None:
        self.settings = settings
        self.db = db
        self._keys = keys
        self._log_signer = log_signer
        self.policy = PublishPolicy(settings.publish_min, settings.publish_interval)
        #: The hour in which this process last forgot expired form nonces.
        self._nonces_purged_hour: int | None = None
        self._witnesses: list[WitnessEndpoint] | None = None
        #: When this process last asked a witness for a checkpoint (petition, size, key).
        self._witness_asked: dict[tuple[str, int, bytes], float] = {}

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = False) -> Service:
        """Connect to the instance's database with its server keys and log key."""
        keys = load_server_keys(settings)
        log_signer = load_log_signer(settings)
        path = sqlite_path(settings.database_url)
        if path is not None and (keys.store is None or store_state(path) is StoreState.PLAIN):
            raise NotInitialized(
                "This instance's database is not encrypted yet; run `anonsign init` (with "
                "the server stopped) to encrypt it."
            )
        db = Database(settings.database_url, keys.store, settings.db_pool_size or None)
        if migrate:
            upgrade(db.engine)
        return cls(settings, db, keys, log_signer)

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
        translations: Sequence[PetitionText] = (),
    ) -> Petition:
        if not recipients:
            raise InvalidPetition(
                "A petition needs at least one organizer public key (--recipient NAME.pub)."
            )
        if identifier_kind is IdentifierKind.PHONE:
            phone_region = validate_region(phone_region) if phone_region else None
        elif phone_region:
            raise InvalidPetition("--region only applies to petitions signed with a phone number.")
        if len({t.lang for t in translations}) != len(translations):
            raise InvalidPetition("Give at most one translation per language.")
        if len(recipients) > MAX_RECIPIENTS:
            raise InvalidPetition(f"A petition can have at most {MAX_RECIPIENTS} organizer keys.")
        keys = {r.key.key_id for r in recipients}
        if len(keys) != len(recipients):
            raise InvalidPetition("The same organizer key was given twice.")
        slug = validate_slug(slug)
        petition = Petition(
            id=secrets.token_hex(16),
            slug=slug,
            title=validate_title(title),
            text=validate_text(text),
            identifier_kind=identifier_kind,
            phone_region=phone_region,
            state=PetitionState.OPEN,
            salt=new_salt(),
            argon2=self.settings.argon2,
            recipients=tuple(recipients),
            log_origin=f"{self._log_signer.name}/{slug}",
            translations=tuple(translations),
        )
        wrapped = wrap_pepper(self._keys.master, petition.id, new_pepper())
        with self.db.writing() as session:
            Repository(session).add_petition(petition, wrapped)
            publish(session, petition, self._log_signer, policy=None)  # the size-0 checkpoint
        return petition

    def petitions(self, *, open_only: bool = False) -> list[Petition]:
        with self.db.reading() as session:
            return Repository(session).petitions(open_only=open_only)

    def summaries(self) -> list[PetitionSummary]:
        with self.db.reading() as session:
            repo = Repository(session)
            return [
                PetitionSummary(
                    p,
                    repo.count_signatures(p.id),
                    repo.count_contacts(p.id),
                    count_new_pending(session, p.id),
                )
                for p in repo.petitions()
            ]

    def petition(self, slug: str) -> Petition:
        with self.db.reading() as session:
            return Repository(session).petition(slug)

    def close(self, slug: str, *, passphrase: str | None = None, rotate: bool = True) -> Petition:
        """Close for good: forget the pepper, publish what is pending, sign a last checkpoint.

        With ``rotate`` (the default), the master key is replaced in the same step (a
        production instance needs the unlock passphrase to seal the new one). Only
        ``emergency-close``, which stops the server and removes the keys right after,
        closes without it.
        """
        staged = False
        try:
            with self.db.writing() as session:
                repo = Repository(session)
                if rotate:
                    repo.lock_key_rotation()
                    self._settle_rotation(repo)
                petition = repo.close_petition(slug)
                publish(session, petition, self._log_signer, policy=None)
                if rotate:
                    new = stage_rotation(self.settings, passphrase)
                    staged = True
                    old = self._keys.master
                    repo.rewrap_peppers(
                        lambda pid, wrapped: wrap_pepper(
                            new.master, pid, unwrap_pepper(old, pid, wrapped)
                        )
                    )
        except BaseException:
            if staged:
                abandon_rotation(self.settings)
            raise
        if rotate:
            finish_rotation(self.settings)
            self._keys = new
        self.db.scrub("petitions", *PENDING_TABLES)
        return petition

    def _settle_rotation(self, repo: Repository) -> None:
        """Finish or forget a rotation a crash interrupted (the caller holds the lock)."""
        if not rotation_pending(self.settings):
            return
        staged = load_server_keys(self.settings, staged=True)
        sample = repo.some_wrapped_pepper()
        if sample is not None and not self._opens(self._keys, *sample):
            if not self._opens(staged, *sample):
                raise MasterKeyMismatch()
            finish_rotation(self.settings)
            self._keys = staged
        else:
            abandon_rotation(self.settings)

    @staticmethod
    def _opens(keys: ServerKeys, petition_id: str, wrapped: bytes) -> bool:
        try:
            unwrap_pepper(keys.master, petition_id, wrapped)
        except MasterKeyMismatch:
            return False
        return True

    def _unwrap(self, petition_id: str, wrapped: bytes) -> bytes:
        """The pepper; after a close rotated the master key, the new key is read again."""
        try:
            return unwrap_pepper(self._keys.master, petition_id, wrapped)
        except MasterKeyMismatch:
            candidates = [load_server_keys(self.settings)]
            if rotation_pending(self.settings):
                candidates.append(load_server_keys(self.settings, staged=True))
            for keys in candidates:
                if self._opens(keys, petition_id, wrapped):
                    self._keys = keys
                    return unwrap_pepper(keys.master, petition_id, wrapped)
            raise

    # --- the public log --------------------------------------------------------------

    def publish(self, slug: str, *, force: bool = True) -> StoredCheckpoint | None:
        """Integrate pending signatures now (or only if due); None if nothing was added.

        After a batch, the WAL is emptied so the pages it drained leave no older copy.
        """
        with self.db.writing() as session:
            petition = Repository(session).petition(slug, lock="publish")
            checkpoint = publish(
                session, petition, self._log_signer, policy=None if force else self.policy
            )
        if checkpoint is not None or force:
            self.db.scrub(*PENDING_TABLES)
        return checkpoint

    def publish_due(self) -> list[tuple[str, StoredCheckpoint]]:
        """Publish every open petition whose batch is due (the background publisher).

        Also forgets, once an hour, the nonces of form tokens that have expired, so they go
        even when nobody posts a form.
        """
        hour = int(time.time() // 3600)
        if hour != self._nonces_purged_hour:
            self.forget_expired_form_nonces(hour)
        published = []
        for petition in self.petitions(open_only=True):
            checkpoint = self.publish(petition.slug, force=False)
            if checkpoint is not None:
                published.append((petition.slug, checkpoint))
        try:
            self.witness_due()
        except Exception as exc:  # a witness problem never stops publication
            log.error("witnessing failed: %s", type(exc).__name__)
        return published

    # --- witnesses (anonsign.witness.client) -----------------------------------------

    @property
    def witnesses(self) -> list[WitnessEndpoint]:
        """The configured witnesses (read once per process)."""
        if self._witnesses is None:
            self._witnesses = load_witnesses(self.settings.witnesses_file)
        return self._witnesses

    def witness(
        self, slug: str, *, retry_after: float = 0.0, after_its_hour: bool = False
    ) -> list[WitnessOutcome]:
        """Offer the latest checkpoint of ``slug`` to every witness that has not cosigned
        it, and keep what they cosign; one outcome per configured witness asked.

        A witness asked less than ``retry_after`` seconds ago by this process (and which
        did not cosign) is not asked again yet: the background publisher retries a
        witness once an hour, not every round. With ``after_its_hour`` (the background
        publisher), an open petition's checkpoint is offered only once the hour after its
        batch has begun: a witness stamps its cosignature to the second, and a batch's
        time (which PUBLISH_MIN ties to its last signatures) is kept to the hour.
        """
        with self.db.reading() as session:
            petition = Repository(session).petition(slug)
            store = LogStore(session, petition.id)
            latest = store.latest_checkpoint()
            have = store.cosignatures(latest.size) if latest is not None else {}
        if latest is None:
            return []
        hour_after = (latest.published_hour + 1) * SECONDS_PER_HOUR
        if after_its_hour and petition.is_open and time.time() < hour_after:
            return []
        outcomes = []
        now = time.monotonic()
        for endpoint in self.witnesses:
            key_id = endpoint.verifier.key_id
            if key_id in have:
                outcomes.append(WitnessOutcome(endpoint.name, key_id, have[key_id]))
                continue
            asked = self._witness_asked.get((petition.id, latest.size, key_id))
            if asked is not None and now - asked < retry_after:
                continue
            self._witness_asked[(petition.id, latest.size, key_id)] = now
            outcome = offer_checkpoint(
                endpoint,
                latest.note,
                partial(self._proof, petition.id, new_size=latest.size),
                self.settings.witness_tunnel,
            )
            if outcome.line is not None:
                with self.db.writing() as session:
                    LogStore(session, petition.id).add_cosignature(
                        latest.size, key_id, endpoint.name, outcome.line
                    )
            outcomes.append(outcome)
        return outcomes

    def _proof(self, petition_id: str, old_size: int, new_size: int) -> list[bytes]:
        with self.db.reading() as session:
            return consistency_proof(old_size, new_size, LogStore(session, petition_id).nodes)

    def witness_due(self) -> None:
        """Every petition's latest checkpoint to the witnesses that lack it (the
        background publisher, after its batches): from the hour after each batch, and
        again an hour after a witness did not cosign."""
        if not self.witnesses:
            return
        for petition in self.petitions():
            outcomes = self.witness(
                petition.slug, retry_after=WITNESS_RETRY_SECONDS, after_its_hour=True
            )
            for outcome in outcomes:
                if outcome.problem is not None:
                    log.warning("witness: %s", outcome.problem)

    def served_checkpoint(self, slug: str) -> StoredCheckpoint:
        """The latest checkpoint, its note followed by every cosignature it has: what
        ``/p/<slug>/checkpoint`` serves (a C2SP signed note with several signatures)."""
        with self.db.reading() as session:
            petition = Repository(session).petition(slug)
            return self._served(LogStore(session, petition.id))

    def served_checkpoint_of(self, petition: Petition) -> StoredCheckpoint:
        """:meth:`served_checkpoint` of a petition already read (the audit page's)."""
        with self.db.reading() as session:
            return self._served(LogStore(session, petition.id))

    @staticmethod
    def _served(store: LogStore) -> StoredCheckpoint:
        latest = store.latest_checkpoint()
        if latest is None:  # every petition is created with one
            raise LogQueryError("This petition has no checkpoint yet.")
        lines = "".join(store.cosignatures(latest.size).values())
        return replace(latest, note=latest.note + lines)

    def publish_status(self, slug: str) -> PublishStatus:
        """What waits for the public log of ``slug``, and when the interval allows a batch."""
        with self.db.reading() as session:
            petition = Repository(session).petition(slug)
            store = LogStore(session, petition.id)
            last = store.latest_checkpoint()
            waiting = store.pending_count()
        hour = last.published_hour if last is not None else 0
        return PublishStatus(
            waiting=waiting,
            published=last.size if last is not None else 0,
            interval_ends=float(hour * SECONDS_PER_HOUR + self.policy.interval_seconds),
        )

    def verifier_key(self) -> str:
        return self._log_signer.verifier_key()

    def checkpoint(self, slug: str) -> StoredCheckpoint:
        with self.db.reading() as session:
            petition = Repository(session).petition(slug)
            stored = LogStore(session, petition.id).latest_checkpoint()
        if stored is None:  # every petition is created with one
            raise LogQueryError("This petition has no checkpoint yet.")
        return stored

    def checkpoint_of(self, petition: Petition) -> StoredCheckpoint:
        """:meth:`checkpoint` of a petition already read (one query, not four)."""
        with self.db.reading() as session:
            stored = LogStore(session, petition.id).latest_checkpoint()
        if stored is None:
            raise LogQueryError("This petition has no checkpoint yet.")
        return stored

    def leaves(self, slug: str, start: int, end: int) -> list[bytes]:
        """Published entries ``start`` .. ``end - 1`` (at most MAX_LEAVES_PAGE of them)."""
        size = self.checkpoint(slug).size
        if not 0 <= start <= end:
            raise LogQueryError("start and end must satisfy 0 <= start <= end.")
        if end > size:
            raise LogQueryError(f"end is beyond the published log (size {size}).")
        end = min(end, start + MAX_LEAVES_PAGE)
        with self.db.reading() as session:
            petition = Repository(session).petition(slug)
            return LogStore(session, petition.id).leaves(start, end)

    def tile(self, slug: str, ref: TileRef) -> bytes | None:
        """A tile or entry bundle of the published log (anonsign.audit.tiles), or None
        when the latest checkpoint's tree has no tile that wide there.

        The checkpoint and the rows are read in one transaction, so a tile never holds
        hashes of a batch whose checkpoint is not yet served.
        """
        with self.db.reading() as session:
            petition = Repository(session).petition(slug)
            store = LogStore(session, petition.id)
            last = store.latest_checkpoint()
            size = last.size if last is not None else 0
            if ref.width > tile_width(size, ref.level or 0, ref.index):
                return None
            if ref.level is None:
                first = ref.index * TILE_WIDTH
                return encode_entry_bundle(store.leaves(first, first + ref.width))
            return store.tile_hashes(ref.level, ref.index, ref.width)

    def inclusion(self, slug: str, entry: bytes, size: int) -> tuple[int, list[bytes]]:
        published = self.checkpoint(slug).size
        if not 1 <= size <= published:
            raise LogQueryError(f"size must be between 1 and the published size ({published}).")
        with self.db.reading() as session:
            petition = Repository(session).petition(slug)
            store = LogStore(session, petition.id)
            index = store.index_of(entry)
            if index is None or index >= size:
                raise LogQueryError(f"This entry is not in the first {size} entries of the log.")
            return index, inclusion_proof(index, size, store.nodes)

    def consistency(self, slug: str, old_size: int, new_size: int) -> list[bytes]:
        published = self.checkpoint(slug).size
        if not 1 <= old_size <= new_size <= published:
            raise LogQueryError(
                f"from and to must satisfy 1 <= from <= to <= {published} (the published size)."
            )
        with self.db.reading() as session:
            petition = Repository(session).petition(slug)
            return consistency_proof(old_size, new_size, LogStore(session, petition.id).nodes)

    def sealed_contacts(self, slug: str) -> tuple[Petition, list[bytes]]:
        with self.db.reading() as session:
            repo = Repository(session)
            petition = repo.petition(slug)
            return petition, list(repo.sealed_contacts(petition.id))

    # --- signer ----------------------------------------------------------------------

    def sign(
        self, slug: str, identifier: str, contact: str, *, petition: Petition | None = None
    ) -> tuple[Petition, bytes]:
        """Accept a signature; identical outcome whether or not it was already there.

        Raises PetitionNotFound, PetitionClosed or InvalidInput (with a message for the
        signer). Returns the petition and the signature's log entry (its dedup key), only
        after the signature is durably committed. The entry is for callers that already
        hold the identifier (tests, tools); it must never reach a page or an answer, where
        it would be a receipt, and so a membership oracle (SECURITY.md).

        ``petition``: the petition ``slug`` names, as the caller read it moments ago (the
        web layer, within this request); then only its state and pepper are read again.
        The insert checks the state once more under the row lock, so a petition closed
        meanwhile still refuses the signature.
        """
        with self.db.reading() as session:
            repo = Repository(session)
            if petition is None or petition.slug != slug:
                petition, wrapped = repo.petition_with_pepper(slug)
                state = petition.state
            else:
                state, wrapped = repo.wrapped_pepper(petition.id)
        if state is not PetitionState.OPEN or wrapped is None:
            raise PetitionClosed()
        pepper = self._unwrap(petition.id, wrapped)
        prepared = prepare_signature(petition, pepper, identifier, contact)
        with self.db.writing() as session:
            Repository(session).record_signature(
                petition.id, prepared.dedup_key, prepared.sealed_contact
            )
        return petition, prepared.dedup_key

    # --- sign-form tokens ------------------------------------------------------------

    def use_form_nonce(self, nonce: bytes, expires_hour: int, *, current_hour: int) -> bool:
        """Spend a sign-form token (crypto.form_token); False if it was spent before.

        A transaction of its own, which the web layer commits before it reads the
        identifier: the token is spent whatever the identifier turns out to be (new,
        repeated, invalid), and no transaction, so no WAL commit, ever holds a nonce and a
        signature together. Once an hour per process, the same transaction forgets the
        nonces of tokens that can no longer be accepted.
        """
        with self.db.writing() as session:
            nonces = UsedNonces(session)
            if current_hour != self._nonces_purged_hour:
                nonces.purge(current_hour)
            fresh = nonces.claim(nonce, expires_hour)
        self._nonces_purged_hour = current_hour
        return fresh

    def forget_expired_form_nonces(self, current_hour: int) -> int:
        """Delete the nonces whose tokens are too old to be accepted in ``current_hour``."""
        with self.db.writing() as session:
            forgotten = UsedNonces(session).purge(current_hour)
        self._nonces_purged_hour = current_hour
        return forgotten
