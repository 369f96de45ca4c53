"""What a petition is, and what makes its fields acceptable."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass, replace

from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keys import OrganizerPublicKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.errors import AnonsignError


class InvalidPetition(AnonsignError):
    """This petition cannot be created as given."""


#: The interface languages; a petition may carry its title and text in each of them.
LANGUAGES = ("en", "ru", "tk")

SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 100_000


class PetitionState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Recipient:
    """An organizer key that the petition's contacts are sealed to."""

    name: str
    key: OrganizerPublicKey


@dataclass(frozen=True)
class PetitionText:
    """The petition's title and text in one more language, shown to readers of that language."""

    lang: str
    title: str
    text: str


@dataclass(frozen=True)
class Petition:
    id: str
    slug: str
    title: str
    text: str
    identifier_kind: IdentifierKind
    phone_region: str | None
    state: PetitionState
    salt: bytes
    argon2: Argon2Params
    recipients: tuple[Recipient, ...]
    #: ``<log name>/<slug>``: the first line of every checkpoint of this petition's log.
    log_origin: str
    #: Versions of the title and text in other languages (by language code).
    translations: tuple[PetitionText, ...] = ()

    def in_language(self, lang: str) -> Petition:
        """This petition as a reader of ``lang`` sees it: translated if there is one."""
        for version in self.translations:
            if version.lang == lang:
                return replace(self, title=version.title, text=version.text)
        return self

    @property
    def is_open(self) -> bool:
        return self.state is PetitionState.OPEN


def validate_slug(slug: str) -> str:
    """A slug is the petition's name in its address: ``/p/<slug>``."""
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidPetition(
            f"The petition name {slug!r} is not usable in an address: use 1 to 64 lowercase "
            "letters, digits and inner dashes, like 'free-the-press'."
        )
    return slug


def _has_control(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def validate_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise InvalidPetition("The petition needs a title.")
    if len(title) > MAX_TITLE_CHARS or _has_control(title):
        raise InvalidPetition(
            f"The title must be one line of at most {MAX_TITLE_CHARS} characters."
        )
    return title


def validate_text(text: str) -> str:
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidPetition("The petition text is empty.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidPetition(f"The petition text is longer than {MAX_TEXT_CHARS} characters.")
    if _has_control(text, allowed="\n\t"):
        raise InvalidPetition("The petition text contains control characters.")
    return text


def validate_translation(lang: str, title: str, text: str) -> PetitionText:
    if lang not in LANGUAGES:
        raise InvalidPetition(
            f"No interface language {lang!r}: a translation can be one of {', '.join(LANGUAGES)}."
        )
    return PetitionText(lang=lang, title=validate_title(title), text=validate_text(text))
