"""Identifier normalization: when two spellings are the same signer.

A signer types an email address, a phone number or an ID number; the dedup key is made
from the string :func:`normalize_identifier` returns, so this module alone decides which
spellings count once. Two rules pull against each other:

* equivalent spellings of one identifier MUST give the same string, or one person counts
  twice;
* distinct identifiers MUST stay distinct, or a real signer is silently dropped as a
  "duplicate" -- and nobody can notice, because the service never says whether a
  signature was new (DESIGN.md, "No membership oracle").

Dropping a real signer is the worse error, so the folding here is minimal: exactly what
is listed below, and nothing a provider or a confusables table might also suggest.

What is folded (kept in step with research/security.md section 2.4 and test T-D2):

* all kinds: surrounding whitespace is stripped, then NFKC (fullwidth letters, digits and
  the fullwidth at sign U+FF20 become ASCII);
* email: ``+tag`` in the local part is dropped, the local part is case-folded
  (``Straße`` -> ``strasse``), the domain becomes its lowercase IDNA ASCII form
  (``пример.рф`` -> ``xn--e1afmkfd.xn--p1ai``);
* phone: any script's decimal digits (Arabic-Indic, Persian, ...), ``tel:``, a leading
  ``00`` for ``+``, spaces, dashes, dots and parentheses; the result is E.164;
* text (ID numbers): case-folded, and every whitespace character and dash (Unicode
  category Pd and U+2212 MINUS SIGN) is removed.

What is deliberately NOT folded:

* provider rules: dots in Gmail local parts, ``googlemail.com`` vs ``gmail.com``; they
  belong to one provider and would merge distinct people at every other one;
* homoglyphs: Cyrillic U+0430 and Latin ``a`` stay distinct (no UTS #39 skeleton), since
  in Turkmen, Russian and English text both scripts are real and a skeleton merges
  real, different addresses;
* any other punctuation in ID numbers (``AB/12`` and ``AB12`` stay distinct).

What is refused with :class:`~anonsign.errors.InvalidIdentifier` (never anything else,
for any ``str``): strings that cannot be encoded as UTF-8 (lone surrogates); control and
format characters (Unicode Cc and Cf, e.g. NUL, bidi overrides such as U+202E, and
zero-width characters such as U+200B, U+200D and U+FEFF) anywhere after the surrounding
whitespace is stripped -- they are invisible, so no honest spelling needs them and
folding them away would be folding we do not need; private-use and unassigned code
points (their meaning, and so their normalization, is not fixed by Unicode, and a later
Python could assign them); U+FFFD, the mark of text already damaged by a wrong decoding
(security.md R20). Each refusal's message is one sentence for the signer saying what to
fix; the messages are the ``*_MESSAGE`` constants below so a translation layer can find
them. A message never depends on anything but the input's syntax (T-D3).

The result of a successful normalization is a fixed point: normalizing it again gives it
back, which the tests check with Hypothesis.

This module does no I/O, no network (email-validator runs with
``check_deliverability=False``, so no DNS), no cryptography, and knows nothing of Flask
or SQL. The normalized form depends on Python's Unicode tables, ``idna`` and the
``phonenumbers`` metadata: changing any of them needs the equivalence tests re-run.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import phonenumbers
from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from anonsign.domain.messages import N_
from anonsign.errors import InvalidContact, InvalidIdentifier, InvalidRegion

__all__ = [
    "ALL_MESSAGES",
    "MAX_IDENTIFIER_CHARS",
    "MAX_TEXT_IDENTIFIER_CHARS",
    "IdentifierKind",
    "normalize_contact",
    "normalize_identifier",
    "validate_region",
]


class IdentifierKind(enum.StrEnum):
    """What a petition asks its signers for; stored with the petition."""

    EMAIL = "email"
    PHONE = "phone"
    TEXT = "text"


#: Longest input accepted, in characters, after surrounding whitespace is stripped. 320
#: is the classic 64 + 1 + 255 bound of an email address; phones and ID numbers are far
#: shorter. Checked before any Unicode work, so a 1 MB field costs one ``len``.
MAX_IDENTIFIER_CHARS: Final = 320

#: Longest normalized ID number (text kind), in characters.
MAX_TEXT_IDENTIFIER_CHARS: Final = 128

# --- messages a signer reads: one sentence each, one constant literal each inside N_ (the
# web layer translates them by this exact text; see anonsign.domain.messages) -----------

EMAIL_EMPTY_MESSAGE: Final = N_("Please enter your email address.")
EMAIL_INVALID_MESSAGE: Final = N_("Please enter a valid email address, like name@example.org.")
EMAIL_TOO_LONG_MESSAGE: Final = N_(
    "This email address is too long; please check it and enter it again."
)
EMAIL_BAD_CHARACTERS_MESSAGE: Final = N_(
    "Please type your email address again by hand, without invisible or special characters."
)

PHONE_EMPTY_MESSAGE: Final = N_("Please enter your phone number.")
PHONE_INVALID_MESSAGE: Final = N_(
    "Please enter a full phone number with its country code, like +993 65 123456."
)
PHONE_NEEDS_COUNTRY_CODE_MESSAGE: Final = N_(
    "Please enter your phone number with its country code, starting with +, like +993 65 123456."
)
PHONE_LETTERS_MESSAGE: Final = N_(
    "Please enter your phone number with digits only, like +993 65 123456."
)
PHONE_EXTENSION_MESSAGE: Final = N_(
    "Please enter your phone number without an extension, like +993 65 123456."
)
PHONE_TOO_LONG_MESSAGE: Final = N_(
    "This is too long for a phone number; please enter it like +993 65 123456."
)
PHONE_BAD_CHARACTERS_MESSAGE: Final = N_(
    "Please type your phone number again by hand, without invisible or special characters."
)

TEXT_EMPTY_MESSAGE: Final = N_("Please enter your ID number.")
TEXT_INVALID_MESSAGE: Final = N_("Please enter your ID number as it is written on your document.")
# No limit in the wording: a msgid must be one constant literal (domain.messages), and
# no real ID number comes near it.
TEXT_TOO_LONG_MESSAGE: Final = N_("This ID number is too long; please check it and enter it again.")
TEXT_BAD_CHARACTERS_MESSAGE: Final = N_(
    "Please type your ID number again by hand, without invisible or special characters."
)

CONTACT_BAD_CHARACTERS_MESSAGE: Final = N_(
    "Please type your contact details again by hand, without invisible or control characters."
)

#: Every message above, for a translation catalogue and for the tests.
ALL_MESSAGES: Final = (
    EMAIL_EMPTY_MESSAGE,
    EMAIL_INVALID_MESSAGE,
    EMAIL_TOO_LONG_MESSAGE,
    EMAIL_BAD_CHARACTERS_MESSAGE,
    PHONE_EMPTY_MESSAGE,
    PHONE_INVALID_MESSAGE,
    PHONE_NEEDS_COUNTRY_CODE_MESSAGE,
    PHONE_LETTERS_MESSAGE,
    PHONE_EXTENSION_MESSAGE,
    PHONE_TOO_LONG_MESSAGE,
    PHONE_BAD_CHARACTERS_MESSAGE,
    TEXT_EMPTY_MESSAGE,
    TEXT_INVALID_MESSAGE,
    TEXT_TOO_LONG_MESSAGE,
    TEXT_BAD_CHARACTERS_MESSAGE,
    CONTACT_BAD_CHARACTERS_MESSAGE,
)


@dataclass(frozen=True, slots=True)
class _Messages:
    empty: str
    invalid: str
    too_long: str
    bad_characters: str


_MESSAGES: Final = {
    IdentifierKind.EMAIL: _Messages(
        EMAIL_EMPTY_MESSAGE,
        EMAIL_INVALID_MESSAGE,
        EMAIL_TOO_LONG_MESSAGE,
        EMAIL_BAD_CHARACTERS_MESSAGE,
    ),
    IdentifierKind.PHONE: _Messages(
        PHONE_EMPTY_MESSAGE,
        PHONE_INVALID_MESSAGE,
        PHONE_TOO_LONG_MESSAGE,
        PHONE_BAD_CHARACTERS_MESSAGE,
    ),
    IdentifierKind.TEXT: _Messages(
        TEXT_EMPTY_MESSAGE,
        TEXT_INVALID_MESSAGE,
        TEXT_TOO_LONG_MESSAGE,
        TEXT_BAD_CHARACTERS_MESSAGE,
    ),
}

# Cc control, Cf format (bidi, zero-width), Cs surrogate (not encodable as UTF-8),
# Co private use, Cn unassigned.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_REPLACEMENT_CHARACTER: Final = "\ufffd"
_MINUS_SIGN: Final = "\u2212"

_MAX_FOLD_ROUNDS: Final = 4

# Every line break a contact may contain becomes "\n" (browsers send "\r\n").
_LINE_BREAKS: Final = re.compile("\r\n|[\r\x85\u2028\u2029]")
# Control (Cc) and format (Cf) characters a contact keeps: tab, newline, ZWNJ, ZWJ.
_CONTACT_KEPT_CONTROLS: Final = frozenset("\t\n\u200c\u200d")
# Refused in a contact, besides U+FFFD.
_CONTACT_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs"})


def normalize_identifier(kind: IdentifierKind, raw: str, *, region: str | None = None) -> str:
    """Return the normalized form of ``raw``, the only input to the dedup key.

    ``region`` is the petition's default phone region (e.g. ``"TM"``), used only for
    phone numbers written without a country code (and ignored for the other kinds);
    ``None`` means the number must start with ``+`` or ``00``. An unknown region is an
    operator error and raises :class:`~anonsign.errors.InvalidRegion` (fail closed rather
    than tell every signer that their number is wrong). Any other failure is an
    :class:`~anonsign.errors.InvalidIdentifier` whose message tells the signer what to
    fix; it never carries (or chains) the identifier, so a logged traceback cannot leak it.
    """
    kind = IdentifierKind(kind)
    messages = _MESSAGES[kind]
    text = _prepare(raw, messages)
    if kind is IdentifierKind.EMAIL:
        return _normalize_email(text)
    if kind is IdentifierKind.PHONE:
        return _normalize_phone(text, None if region is None else validate_region(region))
    return _normalize_text(text)


def validate_region(region: str) -> str:
    """Return ``region`` as a phone region code phonenumbers knows (``"tm"`` -> ``"TM"``).

    For petition creation; raises :class:`~anonsign.errors.InvalidRegion` naming the bad
    value and an example.
    """
    code = region.strip()
    # isascii() before upper(): "\u0131t" (dotless i, t) upper-cases to "IT".
    code = code.upper() if code.isascii() else ""
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidRegion(
            f"{region[:20]!r} is not a phone region anonsign knows; "
            "use a two-letter country code such as TM."
        )
    return code


def normalize_contact(raw: str) -> str | None:
    """Return the optional free-text contact cleaned for sealing, or ``None`` if empty.

    Surrounding whitespace is stripped, the text is NFC-normalized (so the organizer sees
    what the signer typed, with compatibility characters kept), and every line break
    (``\\r\\n``, ``\\r``, U+0085, U+2028, U+2029) becomes ``\\n``. Refused with
    :class:`~anonsign.errors.InvalidContact`: lone surrogates, U+FFFD, control characters
    other than ``\\n`` and ``\\t``, and format characters (bidi overrides and isolates,
    zero-width space, BOM, soft hyphen) -- they can make the decrypted contact display as
    something else on the organizer's screen. ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER
    are kept: Persian and Indic spelling and emoji sequences need them. The byte-length
    limit is enforced by the sealing code, not here.
    """
    text = raw.strip()
    if not text:
        return None
    if any(unicodedata.category(ch) == "Cs" for ch in text):
        raise InvalidContact(CONTACT_BAD_CHARACTERS_MESSAGE)
    text = _LINE_BREAKS.sub("\n", unicodedata.normalize("NFC", text)).strip()
    if any(
        ch not in _CONTACT_KEPT_CONTROLS
        and (
            ch == _REPLACEMENT_CHARACTER or unicodedata.category(ch) in _CONTACT_REFUSED_CATEGORIES
        )
        for ch in text
    ):
        raise InvalidContact(CONTACT_BAD_CHARACTERS_MESSAGE)
    return text or None


# --- common ---------------------------------------------------------------------------------


def _prepare(raw: str, messages: _Messages) -> str:
    """Strip, bound, refuse invisible and unencodable characters, then NFKC."""
    text = raw.strip()
    if not text:
        raise InvalidIdentifier(messages.empty)
    if len(text) > MAX_IDENTIFIER_CHARS:
        raise InvalidIdentifier(messages.too_long)
    if _has_refused_character(text):
        raise InvalidIdentifier(messages.bad_characters)
    text = unicodedata.normalize("NFKC", text).strip()
    # NFKC maps assigned characters to assigned, non-control ones; checked again so that
    # stays an assumption we test rather than one we trust.
    if not text or _has_refused_character(text):
        raise InvalidIdentifier(messages.invalid)
    return text


def _has_refused_character(text: str) -> bool:
    return any(
        ch == _REPLACEMENT_CHARACTER or unicodedata.category(ch) in _REFUSED_CATEGORIES
        for ch in text
    )


def _fold_to_fixed_point(text: str, fold: Callable[[str], str]) -> str | None:
    """Apply ``fold`` until it changes nothing, so the result normalizes to itself.

    One round is not always enough: case folding can undo NFKC's composition (``ΐ``
    folds to three code points that NFKC composes again), and removing a dash can put a
    combining mark next to a letter it then composes with. ``None`` if no fixed point is
    reached within a few rounds (the bound only guarantees termination).
    """
    for _ in range(_MAX_FOLD_ROUNDS):
        folded = fold(text)
        if folded == text:
            return text
        text = folded
    return None


def _case_fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text.casefold())


def _id_fold(text: str) -> str:
    return "".join(ch for ch in _case_fold(text) if not _is_space_or_dash(ch))


def _is_space_or_dash(ch: str) -> bool:
    return ch.isspace() or ch == _MINUS_SIGN or unicodedata.category(ch) == "Pd"


# --- email ----------------------------------------------------------------------------------


def _validate_email(address: str) -> ValidatedEmail:
    # Every option is passed explicitly so that a change to email_validator's module-level
    # defaults elsewhere in the process cannot change which addresses count as equal.
    # check_deliverability=False: no DNS, ever (a lookup would leak the domain over the
    # server's network and make the answer depend on the network).
    return validate_email(
        address,
        allow_smtputf8=True,
        allow_empty_local=False,
        allow_quoted_local=False,
        allow_domain_literal=False,
        allow_display_name=False,
        strict=False,
        check_deliverability=False,
        test_environment=False,
        globally_deliverable=True,
    )


def _normalize_email(text: str) -> str:
    try:
        validated = _validate_email(text)
    except EmailNotValidError:
        # from None: email-validator's message quotes parts of the address.
        raise InvalidIdentifier(EMAIL_INVALID_MESSAGE) from None
    # Plus-addressing: "name+petitions@" reaches "name@" at nearly every provider that
    # has it, and a "+" in a real mailbox name is vanishingly rare.
    local = _fold_to_fixed_point(validated.local_part.split("+", 1)[0], _case_fold)
    domain = validated.ascii_domain.lower()
    if not local:
        raise InvalidIdentifier(EMAIL_INVALID_MESSAGE)
    normalized = f"{local}@{domain}"
    # The key must itself be a valid address that normalizes to itself; this refuses,
    # e.g., "name.+tag@example.org", whose tag-less form "name.@" is not an address.
    try:
        again = _validate_email(normalized)
    except EmailNotValidError:
        raise InvalidIdentifier(EMAIL_INVALID_MESSAGE) from None
    if again.local_part != local or again.ascii_domain.lower() != domain:
        raise InvalidIdentifier(EMAIL_INVALID_MESSAGE)
    return normalized


# --- phone ----------------------------------------------------------------------------------

_TEL_PREFIX: Final = "tel:"
_PHONE_PUNCTUATION: Final = frozenset(".()" + _MINUS_SIGN)


def _normalize_phone(text: str, region: str | None) -> str:
    if text[: len(_TEL_PREFIX)].casefold() == _TEL_PREFIX:
        text = text[len(_TEL_PREFIX) :].strip()
        if not text:
            raise InvalidIdentifier(PHONE_EMPTY_MESSAGE)
    number = _phone_digits(text, region)
    if number.startswith("00"):
        # An international call prefix, as dialled from most of the world. Done here and
        # not by phonenumbers: with region TM (whose prefix is 810) "00993 65 123456"
        # parses to the invalid +9930099365123456.
        number = "+" + number[2:]
    if number.lstrip("+") == "":
        raise InvalidIdentifier(PHONE_INVALID_MESSAGE)
    if region is None and not number.startswith("+"):
        raise InvalidIdentifier(PHONE_NEEDS_COUNTRY_CODE_MESSAGE)
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        raise InvalidIdentifier(PHONE_INVALID_MESSAGE) from None
    if parsed.extension:
        # E.164 formatting would silently drop it, merging "ext. 12" with "ext. 13".
        raise InvalidIdentifier(PHONE_EXTENSION_MESSAGE)
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidIdentifier(PHONE_INVALID_MESSAGE)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _phone_digits(text: str, region: str | None) -> str:
    """Return ``text`` as ASCII digits with an optional leading ``+``.

    Only digits (of any script: NFKC leaves Arabic-Indic and Persian digits alone, so
    they are mapped here by their decimal value), one leading ``+``, whitespace, dashes,
    dots and parentheses are allowed. Letters are refused rather than read as a keypad
    (phonenumbers turns "+1-800-FLOWERS" into a valid number), and so is everything
    phonenumbers would read as an extension marker ("ext.", "x", "#", ";ext=").
    """
    digits: list[str] = []
    for ch in text:
        if ch.isspace() or ch in _PHONE_PUNCTUATION or unicodedata.category(ch) == "Pd":
            continue
        if ch == "+" and not digits:
            digits.append("+")
            continue
        if unicodedata.category(ch) == "Nd":
            digits.append(str(unicodedata.decimal(ch)))
            continue
        raise InvalidIdentifier(_phone_syntax_message(text, region))
    return "".join(digits)


def _phone_syntax_message(text: str, region: str | None) -> str:
    """Say what to fix in a phone number with characters other than digits and spacing."""
    try:
        if phonenumbers.parse(text, region).extension:
            return PHONE_EXTENSION_MESSAGE
    except phonenumbers.NumberParseException:
        pass
    if any(ch.isalpha() for ch in text):
        return PHONE_LETTERS_MESSAGE
    return PHONE_INVALID_MESSAGE


# --- text (ID numbers) ----------------------------------------------------------------------


def _normalize_text(text: str) -> str:
    folded = _fold_to_fixed_point(text, _id_fold)
    if folded is None:
        raise InvalidIdentifier(TEXT_INVALID_MESSAGE)
    if not folded:
        # Only spaces and dashes.
        raise InvalidIdentifier(TEXT_EMPTY_MESSAGE)
    if len(folded) > MAX_TEXT_IDENTIFIER_CHARS:
        raise InvalidIdentifier(TEXT_TOO_LONG_MESSAGE)
    if not folded.isprintable():
        raise InvalidIdentifier(TEXT_INVALID_MESSAGE)
    return folded
