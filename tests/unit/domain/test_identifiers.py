"""Identifier normalization: equal exactly where specified, distinct elsewhere (T-D2).

Every expected value below was checked against phonenumbers 9.0.43 and email-validator
2.4.0; a library upgrade that changes one of them changes which signers count once, so
it must be a deliberate, reviewed change.
"""

from __future__ import annotations

import unicodedata

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anonsign.domain import identifiers as ids
from anonsign.domain.identifiers import (
    MAX_IDENTIFIER_CHARS,
    MAX_TEXT_IDENTIFIER_CHARS,
    IdentifierKind,
    normalize_contact,
    normalize_identifier,
    validate_region,
)
from anonsign.errors import (
    AnonsignError,
    ConfigError,
    InvalidContact,
    InvalidIdentifier,
    InvalidInput,
    InvalidRegion,
)

EMAIL = IdentifierKind.EMAIL
PHONE = IdentifierKind.PHONE
TEXT = IdentifierKind.TEXT

MEGABYTE = 1_000_000

# Hypothesis: no example database (nothing written into the checkout), no deadline (the
# first phonenumbers call loads metadata).
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    # tests/conftest.py has autouse function-scoped fixtures; none of them matters here.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# --- the example numbers are real, valid Turkmen mobile numbers ----------------------------

TM_MOBILES = ["+99365123456", "+99361234567", "+99371234567", "+99372345678"]


@pytest.mark.parametrize("number", TM_MOBILES)
def test_example_numbers_are_valid_turkmen_mobiles(number: str) -> None:
    parsed = phonenumbers.parse(number, None)
    assert phonenumbers.is_valid_number(parsed)
    assert phonenumbers.region_code_for_number(parsed) == "TM"
    assert phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE


# --- equivalence classes: every spelling gives exactly the canonical form ------------------

# (kind, region, canonical, {id: spelling})
EQUIVALENCE_CLASSES: list[tuple[IdentifierKind, str | None, str, dict[str, str]]] = [
    (
        EMAIL,
        None,
        "alice@example.org",
        {
            "plain": "alice@example.org",
            "capitalised": "Alice@Example.org",
            "upper": "ALICE@EXAMPLE.ORG",
            "surrounding-ascii-space": "  alice@example.org\n",
            "surrounding-unicode-space": "\u3000alice@example.org\u00a0",
            "plus-tag": "alice+petition@example.org",
            "plus-tags-cased": "Alice+Tag+More@example.org",
            "empty-tag": "alice+@example.org",
            "fullwidth": "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｏｒｇ",
            "fullwidth-plus-tag": "ａｌｉｃｅ＋ｔａｇ＠example.org",
        },
    ),
    (
        EMAIL,
        None,
        "user@xn--e1afmkfd.xn--p1ai",
        {
            "idn": "user@пример.рф",
            "punycode": "user@xn--e1afmkfd.xn--p1ai",
            "idn-upper": "USER@ПРИМЕР.РФ",
            "punycode-upper": "User@XN--E1AFMKFD.XN--P1AI",
            "idn-plus-tag": "user+x@пример.рф",
        },
    ),
    (
        EMAIL,
        None,
        "алиса@xn--e1afmkfd.xn--p1ai",
        {
            "cyrillic-local": "алиса@пример.рф",
            "cyrillic-local-upper": "АЛИСА@ПРИМЕР.РФ",
            "cyrillic-local-capitalised-punycode": "Алиса@xn--e1afmkfd.xn--p1ai",
        },
    ),
    (
        EMAIL,
        None,
        "john.smith@gmail.com",
        {
            "cased": "John.Smith@Gmail.COM",
            "plus-tag": "john.smith+news@gmail.com",
        },
    ),
    (
        EMAIL,
        None,
        "strasse@example.org",
        {
            # casefold, not lower: documented in security.md section 2.4.
            "sharp-s": "Straße@example.org",
            "upper": "STRASSE@example.org",
            "lower": "strasse@example.org",
        },
    ),
    (
        EMAIL,
        None,
        "rené@example.org",
        {
            "precomposed": "rené@example.org",
            "decomposed": "rene\u0301@example.org",
            "upper": "RENÉ@example.org",
        },
    ),
    (
        PHONE,
        "TM",
        "+99365123456",
        {
            "international": "+993 65 123456",
            "e164": "+99365123456",
            "dashes": "+993-65-12-34-56",
            "parentheses-dots": "+993 (65) 12.34.56",
            "grouped": "+993 65 12 34 56",
            "00-prefix": "00993 65 123456",
            "00-prefix-spaced": "00 993 65 123456",
            "tel-uri": "tel:+993-65-123456",
            "tel-uri-upper": "TEL:+99365123456",
            "national-trunk-8": "8 65 123456",
            "national-trunk-8-punctuated": "8 (65) 12-34-56",
            "national-bare": "65 123456",
            "national-compact": "65123456",
            "tm-international-prefix-810": "810 993 65 123456",
            "fullwidth-national": "８ ６５ １２３４５６",
            "fullwidth-international": "＋９９３ ６５ １２３４５６",
            "arabic-indic-national": "٨ ٦٥ ١٢٣٤٥٦",
            "arabic-indic-international": "+٩٩٣ ٦٥ ١٢٣٤٥٦",
            "persian-digits": "۸ ۶۵ ۱۲۳۴۵۶",
            "devanagari-digits": "+९९३ ६५ १२३४५६",
            "non-breaking-hyphen": "+993\u201165\u2011123456",
            "minus-sign": "+993\u221265\u2212123456",
            "surrounding-unicode-space": "\u00a0+993 65 123456\u3000",
        },
    ),
    (
        PHONE,
        None,
        "+99365123456",
        {
            "no-region-international": "+993 65 123456",
            "no-region-00": "00993 65 123456",
            "no-region-tel-uri": "tel:+993-65-123456",
            "no-region-arabic-indic": "+٩٩٣ ٦٥ ١٢٣٤٥٦",
        },
    ),
    (
        PHONE,
        "TM",
        "+99371234567",
        {
            "international": "+993 71 234567",
            "national-trunk-8": "8 71 23 45 67",
            "national-compact": "71234567",
        },
    ),
    (
        PHONE,
        "TM",
        "+79123456789",
        {
            # A foreign number signed on a Turkmen petition stays that number.
            "foreign-international": "+7 912 345 67 89",
            "foreign-via-810": "810 7 912 345 67 89",
            "foreign-via-00": "00 7 912 345-67-89",
        },
    ),
    (
        TEXT,
        None,
        "ab1234",
        {
            "upper": "AB1234",
            "spaces": "ab 12 34",
            "hyphens": "AB-12-34",
            "en-dash-and-spaces": "A B \u2013 1 2 3 4",
            "fullwidth": "ＡＢ１２３４",
            "fullwidth-hyphen": "ＡＢ－１２３４",
            "minus-sign": "AB\u22121234",
            "unicode-hyphen": "AB\u20101234",
            "surrounding-whitespace": "\tAB 1234\n",
            "no-break-space": "AB\u00a01234",
            "ideographic-space": "AB\u30001234",
        },
    ),
    (
        TEXT,
        None,
        "ав123456",
        {
            "cyrillic-upper": "АВ 123456",
            "cyrillic-dashed": "ав-123-456",
        },
    ),
]

EQUIVALENCE_CASES = [
    pytest.param(kind, region, canonical, spelling, id=f"{kind}-{canonical}-{name}")
    for kind, region, canonical, spellings in EQUIVALENCE_CLASSES
    for name, spelling in spellings.items()
]


@pytest.mark.parametrize(("kind", "region", "canonical", "spelling"), EQUIVALENCE_CASES)
def test_equivalent_spellings_normalize_to_the_same_string(
    kind: IdentifierKind, region: str | None, canonical: str, spelling: str
) -> None:
    assert normalize_identifier(kind, spelling, region=region) == canonical


@pytest.mark.parametrize(("kind", "region", "canonical", "spelling"), EQUIVALENCE_CASES)
def test_the_canonical_form_is_a_fixed_point(
    kind: IdentifierKind, region: str | None, canonical: str, spelling: str
) -> None:
    del spelling
    assert normalize_identifier(kind, canonical, region=region) == canonical


def test_region_is_case_insensitive() -> None:
    assert normalize_identifier(PHONE, "65 123456", region="tm") == "+99365123456"


# --- non-equivalence: these must stay distinct ---------------------------------------------

# (kind, region_a, a, region_b, b)
DISTINCT_PAIRS = [
    pytest.param(PHONE, "TM", "+993 65 123456", "TM", "+993 65 123457", id="phone-last-digit"),
    pytest.param(PHONE, "TM", "+993 65 123456", "TM", "+993 61 123456", id="phone-operator-code"),
    pytest.param(PHONE, None, "+993 65123456", None, "+65 6512 3456", id="phone-other-country"),
    pytest.param(PHONE, "TM", "65123456", "SG", "65123456", id="phone-same-digits-other-region"),
    pytest.param(PHONE, "TM", "+993 65 123456", "TM", "+993 12 345678", id="phone-mobile-vs-fixed"),
    pytest.param(
        EMAIL, None, "john.smith@gmail.com", None, "johnsmith@gmail.com", id="email-gmail-dots"
    ),
    pytest.param(
        EMAIL, None, "alice@gmail.com", None, "alice@googlemail.com", id="email-googlemail"
    ),
    pytest.param(
        EMAIL,
        None,
        "\u0430lice@example.org",
        None,
        "alice@example.org",
        id="email-cyrillic-homoglyph-local",
    ),
    pytest.param(
        EMAIL,
        None,
        "alice@ex\u0430mple.org",
        None,
        "alice@example.org",
        id="email-cyrillic-homoglyph-domain",
    ),
    pytest.param(
        EMAIL, None, "alice@example.org", None, "alicia@example.org", id="email-local-part"
    ),
    pytest.param(EMAIL, None, "alice@example.org", None, "alice@example.com", id="email-domain"),
    pytest.param(
        EMAIL, None, "alice-news@example.org", None, "alice@example.org", id="email-dash-not-tag"
    ),
    pytest.param(
        EMAIL, None, "alice_x@example.org", None, "alice@example.org", id="email-underscore"
    ),
    pytest.param(
        EMAIL, None, "user@faß.de", None, "user@fass.de", id="email-idna2008-sharp-s-domain"
    ),
    pytest.param(TEXT, None, "AB1234", None, "AB1235", id="text-digit"),
    pytest.param(TEXT, None, "AB/1234", None, "AB1234", id="text-slash-kept"),
    pytest.param(TEXT, None, "AB.1234", None, "AB1234", id="text-dot-kept"),
    pytest.param(TEXT, None, "AB_1234", None, "AB1234", id="text-underscore-kept"),
    pytest.param(TEXT, None, "\u0410\u04121234", None, "AB1234", id="text-cyrillic-homoglyphs"),
    pytest.param(TEXT, None, "O0", None, "00", id="text-letter-o-vs-zero"),
]


@pytest.mark.parametrize(("kind", "region_a", "a", "region_b", "b"), DISTINCT_PAIRS)
def test_distinct_identifiers_stay_distinct(
    kind: IdentifierKind, region_a: str | None, a: str, region_b: str | None, b: str
) -> None:
    assert normalize_identifier(kind, a, region=region_a) != normalize_identifier(
        kind, b, region=region_b
    )


# --- invalid input: InvalidIdentifier with the kind's message ------------------------------

INVALID_CASES = [
    # email
    pytest.param(EMAIL, None, "", ids.EMAIL_EMPTY_MESSAGE, id="email-empty"),
    pytest.param(EMAIL, None, " \t\u3000 ", ids.EMAIL_EMPTY_MESSAGE, id="email-whitespace"),
    pytest.param(EMAIL, None, "alice", ids.EMAIL_INVALID_MESSAGE, id="email-no-at"),
    pytest.param(EMAIL, None, "a@b", ids.EMAIL_INVALID_MESSAGE, id="email-no-tld"),
    pytest.param(EMAIL, None, "@example.org", ids.EMAIL_INVALID_MESSAGE, id="email-no-local"),
    pytest.param(EMAIL, None, "alice@", ids.EMAIL_INVALID_MESSAGE, id="email-no-domain"),
    pytest.param(EMAIL, None, "+tag@example.org", ids.EMAIL_INVALID_MESSAGE, id="email-only-tag"),
    pytest.param(EMAIL, None, "+@example.org", ids.EMAIL_INVALID_MESSAGE, id="email-only-plus"),
    pytest.param(
        EMAIL, None, "alice.+tag@example.org", ids.EMAIL_INVALID_MESSAGE, id="email-dot-before-tag"
    ),
    pytest.param(EMAIL, None, "a@@example.org", ids.EMAIL_INVALID_MESSAGE, id="email-two-ats"),
    pytest.param(EMAIL, None, "a@example..org", ids.EMAIL_INVALID_MESSAGE, id="email-double-dot"),
    pytest.param(
        EMAIL, None, "Alice <alice@example.org>", ids.EMAIL_INVALID_MESSAGE, id="email-display-name"
    ),
    pytest.param(EMAIL, None, '"a b"@example.org', ids.EMAIL_INVALID_MESSAGE, id="email-quoted"),
    pytest.param(EMAIL, None, "a@[192.0.2.1]", ids.EMAIL_INVALID_MESSAGE, id="email-ip-literal"),
    pytest.param(EMAIL, None, "a@localhost", ids.EMAIL_INVALID_MESSAGE, id="email-localhost"),
    pytest.param(
        EMAIL,
        None,
        "a@duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
        ids.EMAIL_INVALID_MESSAGE,
        id="email-onion-special-use",
    ),
    pytest.param(
        EMAIL, None, "a" * 250 + "@example.org", ids.EMAIL_INVALID_MESSAGE, id="email-over-254"
    ),
    pytest.param(
        EMAIL, None, "a" * 310 + "@example.org", ids.EMAIL_TOO_LONG_MESSAGE, id="email-over-320"
    ),
    pytest.param(EMAIL, None, "a" * MEGABYTE, ids.EMAIL_TOO_LONG_MESSAGE, id="email-1MB"),
    pytest.param(
        EMAIL, None, "ali\x00ce@example.org", ids.EMAIL_BAD_CHARACTERS_MESSAGE, id="email-nul"
    ),
    pytest.param(
        EMAIL,
        None,
        "alice@example.org\x00",
        ids.EMAIL_BAD_CHARACTERS_MESSAGE,
        id="email-trailing-nul",
    ),
    pytest.param(
        EMAIL,
        None,
        "\udc80alice@example.org",
        ids.EMAIL_BAD_CHARACTERS_MESSAGE,
        id="email-lone-surrogate",
    ),
    pytest.param(
        EMAIL,
        None,
        "alice@exa\u202emple.org",
        ids.EMAIL_BAD_CHARACTERS_MESSAGE,
        id="email-rtl-override",
    ),
    pytest.param(
        EMAIL,
        None,
        "ali\u200bce@example.org",
        ids.EMAIL_BAD_CHARACTERS_MESSAGE,
        id="email-zero-width-space",
    ),
    pytest.param(
        EMAIL, None, "\ufeffalice@example.org", ids.EMAIL_BAD_CHARACTERS_MESSAGE, id="email-bom"
    ),
    pytest.param(
        EMAIL,
        None,
        "ali\ufffdce@example.org",
        ids.EMAIL_BAD_CHARACTERS_MESSAGE,
        id="email-replacement-char",
    ),
    # phone
    pytest.param(PHONE, "TM", "", ids.PHONE_EMPTY_MESSAGE, id="phone-empty"),
    pytest.param(PHONE, "TM", "tel:", ids.PHONE_EMPTY_MESSAGE, id="phone-tel-only"),
    pytest.param(PHONE, "TM", "+", ids.PHONE_INVALID_MESSAGE, id="phone-plus-only"),
    pytest.param(PHONE, "TM", "( )", ids.PHONE_INVALID_MESSAGE, id="phone-punctuation-only"),
    pytest.param(
        PHONE, "TM", "+993 65 123456 ext. 12", ids.PHONE_EXTENSION_MESSAGE, id="phone-ext-dot"
    ),
    pytest.param(PHONE, "TM", "+993 65 123456 x12", ids.PHONE_EXTENSION_MESSAGE, id="phone-ext-x"),
    pytest.param(
        PHONE, "TM", "+993 65 123456#12", ids.PHONE_EXTENSION_MESSAGE, id="phone-ext-hash"
    ),
    pytest.param(
        PHONE,
        "TM",
        "tel:+993-65-123456;ext=12",
        ids.PHONE_EXTENSION_MESSAGE,
        id="phone-ext-tel-uri",
    ),
    pytest.param(
        PHONE, "TM", "+993 65 123456 доб. 12", ids.PHONE_EXTENSION_MESSAGE, id="phone-ext-russian"
    ),
    pytest.param(
        PHONE, "TM", "65 123456 ext 1", ids.PHONE_EXTENSION_MESSAGE, id="phone-ext-national"
    ),
    pytest.param(PHONE, None, "+1-800-FLOWERS", ids.PHONE_LETTERS_MESSAGE, id="phone-vanity"),
    pytest.param(PHONE, "TM", "+993 65 ABCDEF", ids.PHONE_LETTERS_MESSAGE, id="phone-letters"),
    pytest.param(PHONE, "TM", "+993 65 12345", ids.PHONE_INVALID_MESSAGE, id="phone-too-short"),
    pytest.param(
        PHONE, "TM", "+993 65 1234567", ids.PHONE_INVALID_MESSAGE, id="phone-one-digit-long"
    ),
    pytest.param(PHONE, "TM", "12", ids.PHONE_INVALID_MESSAGE, id="phone-two-digits"),
    pytest.param(PHONE, "TM", "0 65 123456", ids.PHONE_INVALID_MESSAGE, id="phone-trunk-0-not-tm"),
    pytest.param(
        PHONE, "TM", "+999 65 123456", ids.PHONE_INVALID_MESSAGE, id="phone-no-such-country"
    ),
    pytest.param(PHONE, "TM", "+993 65+123456", ids.PHONE_INVALID_MESSAGE, id="phone-inner-plus"),
    pytest.param(PHONE, "TM", "+993/65/123456", ids.PHONE_INVALID_MESSAGE, id="phone-slashes"),
    pytest.param(
        PHONE,
        None,
        "65 123456",
        ids.PHONE_NEEDS_COUNTRY_CODE_MESSAGE,
        id="phone-no-region-national",
    ),
    pytest.param(
        PHONE, None, "8 65 123456", ids.PHONE_NEEDS_COUNTRY_CODE_MESSAGE, id="phone-no-region-trunk"
    ),
    pytest.param(
        PHONE, None, "٦٥ ١٢٣٤٥٦", ids.PHONE_NEEDS_COUNTRY_CODE_MESSAGE, id="phone-no-region-arabic"
    ),
    pytest.param(PHONE, "TM", "1" * 400, ids.PHONE_TOO_LONG_MESSAGE, id="phone-over-320"),
    pytest.param(PHONE, "TM", "1" * MEGABYTE, ids.PHONE_TOO_LONG_MESSAGE, id="phone-1MB"),
    pytest.param(PHONE, "TM", "+" + "9" * 300, ids.PHONE_INVALID_MESSAGE, id="phone-300-digits"),
    pytest.param(
        PHONE, "TM", "+993 65 123456\x00", ids.PHONE_BAD_CHARACTERS_MESSAGE, id="phone-nul"
    ),
    pytest.param(
        PHONE, "TM", "\udc80", ids.PHONE_BAD_CHARACTERS_MESSAGE, id="phone-lone-surrogate"
    ),
    pytest.param(
        PHONE,
        "TM",
        "+993 65\u202e123456",
        ids.PHONE_BAD_CHARACTERS_MESSAGE,
        id="phone-rtl-override",
    ),
    pytest.param(
        PHONE,
        "TM",
        "\u200e+993 65 123456\u200e",
        ids.PHONE_BAD_CHARACTERS_MESSAGE,
        id="phone-lrm-marks",
    ),
    pytest.param(
        PHONE, "TM", "+993\u200b65123456", ids.PHONE_BAD_CHARACTERS_MESSAGE, id="phone-zero-width"
    ),
    pytest.param(
        PHONE, "TM", "+993\t65 123456", ids.PHONE_BAD_CHARACTERS_MESSAGE, id="phone-inner-tab"
    ),
    # text (ID numbers)
    pytest.param(TEXT, None, "", ids.TEXT_EMPTY_MESSAGE, id="text-empty"),
    pytest.param(TEXT, None, "   ", ids.TEXT_EMPTY_MESSAGE, id="text-whitespace"),
    pytest.param(TEXT, None, "---", ids.TEXT_EMPTY_MESSAGE, id="text-dashes-only"),
    pytest.param(
        TEXT, None, "\u2013 \u2014 \u2212", ids.TEXT_EMPTY_MESSAGE, id="text-unicode-dashes-only"
    ),
    pytest.param(TEXT, None, "\x00", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-nul"),
    pytest.param(TEXT, None, "AB\x001234", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-inner-nul"),
    pytest.param(TEXT, None, "AB\x1b[31m1234", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-escape"),
    pytest.param(TEXT, None, "\udc80", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-lone-surrogate"),
    pytest.param(
        TEXT, None, "AB\u202e1234", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-rtl-override"
    ),
    pytest.param(TEXT, None, "AB\u200b1234", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-zero-width"),
    pytest.param(
        TEXT, None, "\u200bAB1234", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-leading-zwsp"
    ),
    pytest.param(
        TEXT, None, "AB\u00ad1234", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-soft-hyphen"
    ),
    pytest.param(TEXT, None, "AB\ufffd12", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-replacement"),
    pytest.param(TEXT, None, "AB\ue00012", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-private-use"),
    pytest.param(TEXT, None, "AB\uffff12", ids.TEXT_BAD_CHARACTERS_MESSAGE, id="text-noncharacter"),
    pytest.param(
        TEXT,
        None,
        "A" * (MAX_TEXT_IDENTIFIER_CHARS + 1),
        ids.TEXT_TOO_LONG_MESSAGE,
        id="text-over-normalized-bound",
    ),
    pytest.param(
        TEXT,
        None,
        "A" * (MAX_IDENTIFIER_CHARS + 1),
        ids.TEXT_TOO_LONG_MESSAGE,
        id="text-over-raw-bound",
    ),
    pytest.param(TEXT, None, "A" * MEGABYTE, ids.TEXT_TOO_LONG_MESSAGE, id="text-1MB"),
    pytest.param(TEXT, None, "\x00" * MEGABYTE, ids.TEXT_TOO_LONG_MESSAGE, id="text-1MB-nul"),
    pytest.param(TEXT, None, "\ufdfa" * 9, ids.TEXT_TOO_LONG_MESSAGE, id="text-nfkc-expansion"),
]


@pytest.mark.parametrize(("kind", "region", "raw", "message"), INVALID_CASES)
def test_invalid_input_is_refused_with_a_message_for_the_signer(
    kind: IdentifierKind, region: str | None, raw: str, message: str
) -> None:
    with pytest.raises(InvalidIdentifier) as excinfo:
        normalize_identifier(kind, raw, region=region)
    assert type(excinfo.value) is InvalidIdentifier
    assert excinfo.value.message == message
    # Nothing of the input rides along into a logged traceback.
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__ or excinfo.value.__context__ is None


@pytest.mark.parametrize(
    "raw", [" " * MEGABYTE, "\u3000" * MEGABYTE], ids=["ascii-spaces", "ideographic-spaces"]
)
@pytest.mark.parametrize("kind", list(IdentifierKind))
def test_a_megabyte_of_whitespace_is_empty(kind: IdentifierKind, raw: str) -> None:
    with pytest.raises(InvalidIdentifier, match=r"^Please enter your "):
        normalize_identifier(kind, raw, region="TM")


def test_the_raw_bound_is_inclusive() -> None:
    raw = "A - " * (MAX_IDENTIFIER_CHARS // 4)
    assert len(raw) == MAX_IDENTIFIER_CHARS
    assert normalize_identifier(TEXT, raw) == "a" * (MAX_IDENTIFIER_CHARS // 4)
    with pytest.raises(InvalidIdentifier):
        normalize_identifier(TEXT, raw + "B")


def test_a_signer_error_is_an_invalid_input() -> None:
    assert issubclass(InvalidIdentifier, InvalidInput)
    assert issubclass(InvalidContact, InvalidInput)


@pytest.mark.parametrize("message", ids.ALL_MESSAGES)
def test_every_message_is_one_sentence(message: str) -> None:
    assert message[0].isupper()
    assert message.endswith(".")
    assert ". " not in message
    assert len(message) <= 100


# --- regions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("TM", "TM"), ("tm", "TM"), (" Tm ", "TM"), ("ru", "RU"), ("SG", "SG")],
    ids=["upper", "lower", "padded-mixed", "ru", "sg"],
)
def test_validate_region_accepts_known_regions(raw: str, expected: str) -> None:
    assert validate_region(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "XX", "ZZ", "001", "TKM", "Turkmenistan", "\u0131t", "T\x00M", "\udc80", "X" * MEGABYTE],
    ids=[
        "empty",
        "xx",
        "unknown-zz",
        "non-geographic-001",
        "alpha3",
        "name",
        "dotless-i",
        "nul",
        "surrogate",
        "1MB",
    ],
)
def test_validate_region_refuses_unknown_regions(raw: str) -> None:
    with pytest.raises(InvalidRegion) as excinfo:
        validate_region(raw)
    assert isinstance(excinfo.value, ConfigError)
    assert "TM" in excinfo.value.message
    assert len(excinfo.value.message) < 200


def test_an_unknown_petition_region_fails_closed() -> None:
    with pytest.raises(InvalidRegion):
        normalize_identifier(PHONE, "+993 65 123456", region="XX")


# --- contacts ------------------------------------------------------------------------------

CONTACT_CASES = [
    pytest.param("", None, id="empty"),
    pytest.param(" \r\n\t\u3000", None, id="whitespace"),
    pytest.param("  Telegram: @someone  ", "Telegram: @someone", id="strip"),
    pytest.param("line one\r\nline two", "line one\nline two", id="crlf"),
    pytest.param("line one\rline two", "line one\nline two", id="lone-cr"),
    pytest.param("line one\u2028line two", "line one\nline two", id="line-separator"),
    pytest.param("line one\x85line two", "line one\nline two", id="next-line-c1"),
    pytest.param("a\tb", "a\tb", id="inner-tab-kept"),
    pytest.param("rene\u0301", "rené", id="nfc"),
    pytest.param("ﬁle ＡＢ", "ﬁle ＡＢ", id="nfc-keeps-compatibility-forms"),
    pytest.param("Ali@Example.ORG", "Ali@Example.ORG", id="case-kept"),
    pytest.param("می\u200cخواهم", "می\u200cخواهم", id="zwnj-kept"),
    pytest.param("\U0001f469\u200d\U0001f4bb", "\U0001f469\u200d\U0001f4bb", id="zwj-emoji-kept"),
    pytest.param("Салам, Ашгабат", "Салам, Ашгабат", id="cyrillic"),
]


@pytest.mark.parametrize(("raw", "expected"), CONTACT_CASES)
def test_normalize_contact(raw: str, expected: str | None) -> None:
    assert normalize_contact(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("\x00", id="nul"),
        pytest.param("a\x00b", id="inner-nul"),
        pytest.param("a\udc80b", id="lone-surrogate"),
        pytest.param("a\u202eb", id="rtl-override"),
        pytest.param("a\u2066b\u2069", id="bidi-isolate"),
        pytest.param("a\u200bb", id="zero-width-space"),
        pytest.param("\ufeffa", id="bom"),
        pytest.param("a\x0bb", id="vertical-tab"),
        pytest.param("a\x1b[2Jb", id="terminal-escape"),
        pytest.param("a\x7fb", id="delete"),
        pytest.param("a\ufffdb", id="replacement-char"),
    ],
)
def test_normalize_contact_refuses_control_characters(raw: str) -> None:
    with pytest.raises(InvalidContact) as excinfo:
        normalize_contact(raw)
    assert excinfo.value.message == ids.CONTACT_BAD_CHARACTERS_MESSAGE


# --- properties ----------------------------------------------------------------------------

# Characters that have found bugs in normalizers: controls, surrogates, bidi, zero-width,
# combining marks, case-folding and NFKC oddities, digits of other scripts, separators.
_TRICKY = [
    "\x00",
    "\udc80",
    "\ud800",
    "\u202e",
    "\u2066",
    "\u200b",
    "\u200c",
    "\u200d",
    "\ufeff",
    "\ufffd",
    "\u00ad",
    "\u0301",
    "\u0308",
    "\u0345",
    "ß",
    "ΐ",
    "ﬁ",
    "ǅ",
    "İ",
    "ı",
    "¨",
    "\u2474",
    "\ufdfa",
    "＠",
    "@",
    "＋",
    "+",
    "-",
    "\u2212",
    "\u2011",
    "\u2013",
    ".",
    "(",
    ")",
    " ",
    "\u00a0",
    "\u3000",
    "\r\n",
    "\r",
    "\n",
    "\t",
    "\u2028",
    "٣",
    "۳",
    "８",
    "3",
    "😀",
    "a",
    "A",
    "а",
    "tel:",
    "00",
    "+993",
    "65123456",
    "example.org",
    "xn--",
    "пример.рф",
    "ext. 1",
    "\ue000",
    "\uffff",
]
arbitrary_text = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.lists(st.one_of(st.sampled_from(_TRICKY), st.text(max_size=3)), max_size=12).map("".join),
)
regions = st.sampled_from([None, "TM"])


@PROPERTY
@given(kind=st.sampled_from(list(IdentifierKind)), raw=arbitrary_text, region=regions)
def test_any_text_normalizes_or_is_refused_and_normal_forms_are_fixed_points(
    kind: IdentifierKind, raw: str, region: str | None
) -> None:
    try:
        normalized = normalize_identifier(kind, raw, region=region)
    except InvalidIdentifier:
        return
    assert isinstance(normalized, str)
    assert normalize_identifier(kind, normalized, region=region) == normalized
    assert normalized.encode("utf-8")


_DIGIT_ZEROS = [
    0x30,
    0xFF10,
    0x660,
    0x6F0,
    0x966,
]  # ASCII, fullwidth, Arabic-Indic, Persian, Devanagari
_SEPARATORS = ["", "", " ", "-", ".", "\u2011", "\u2212", "\u00a0", "\u2013"]


@st.composite
def turkmen_mobile_spellings(draw: st.DrawFn) -> tuple[str, str | None, str]:
    """A valid Turkmen mobile number, spelled any way a signer might."""
    operator = draw(st.sampled_from([f"6{d}" for d in range(10)] + ["71", "72"]))
    subscriber = draw(st.text("0123456789", min_size=6, max_size=6))
    national = operator + subscriber
    region = draw(regions)
    prefixes = ["+993", "00993", "＋993"]
    if region == "TM":
        prefixes += ["8", "", "810993"]
    prefix = draw(st.sampled_from(prefixes))
    zero = draw(st.sampled_from(_DIGIT_ZEROS))
    pieces = []
    for ch in prefix + national:
        pieces.append(chr(zero + int(ch)) if ch.isdigit() else ch)
        pieces.append(draw(st.sampled_from(_SEPARATORS)))
    spelled = "".join(pieces)
    if prefix.startswith(("+", "＋")) and draw(st.booleans()):
        spelled = draw(st.sampled_from(["tel:", "TEL:", "tel: "])) + spelled
    padding = draw(st.sampled_from(["", " ", "\u3000", "\n"]))
    return padding + spelled + padding, region, "+993" + national


@PROPERTY
@given(case=turkmen_mobile_spellings())
def test_every_spelling_of_a_turkmen_mobile_gives_its_e164(
    case: tuple[str, str | None, str],
) -> None:
    spelled, region, expected = case
    assert normalize_identifier(PHONE, spelled, region=region) == expected


@PROPERTY
@given(address=st.emails(), tag=st.text("abcxyz019-_", max_size=8))
def test_case_and_tag_variants_of_an_email_are_equal(address: str, tag: str) -> None:
    try:
        normalized = normalize_identifier(EMAIL, address)
    except InvalidIdentifier:
        return
    assert normalize_identifier(EMAIL, normalized) == normalized
    local, _, domain = address.rpartition("@")
    assert normalize_identifier(EMAIL, f"{local.upper()}@{domain.upper()}") == normalized
    assert normalize_identifier(EMAIL, f" {local}+{tag}@{domain}\n") == normalized


@PROPERTY
@given(raw=arbitrary_text)
def test_any_contact_normalizes_or_is_refused_and_is_a_fixed_point(raw: str) -> None:
    try:
        normalized = normalize_contact(raw)
    except InvalidContact:
        return
    if normalized is None:
        return
    assert normalized == normalized.strip()
    assert unicodedata.is_normalized("NFC", normalized)
    assert "\r" not in normalized
    assert normalize_contact(normalized) == normalized


def test_every_error_is_an_anonsign_error() -> None:
    for error in (InvalidIdentifier, InvalidContact, InvalidRegion):
        assert issubclass(error, AnonsignError)
