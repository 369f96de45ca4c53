"""Sign-form tokens: one page load of one petition, posted once, not too soon, not too late.

Why: Flask-WTF's CSRF token stays valid for six hours on every petition, so one client
that fetched one page posted five fake identifiers a second with it, about 19,000 an
hour. A form token is issued each time the sign form is rendered and says, under the
server's key, *which petition* and *when*; the web layer accepts a post only if its token
is genuine, for this petition, at least ``min_seconds`` old (a script that posts the
moment it reads the page waits, a person never notices) and at most ``max_seconds`` old
(Tor is slow and people hesitate: six hours by default), and only once: the caller
remembers the token's random **nonce** until the token could no longer be accepted
anyway (storage.used_nonces).

Format (v1), 72 bytes, sent as 96 characters of unpadded base64url::

    payload = petition id (16 bytes, the petition's random id)
            ‖ issued (8 bytes, big-endian milliseconds since the Unix epoch)
            ‖ nonce (16 random bytes)
    token   = payload ‖ HMAC-SHA256(K, payload)
    K       = HKDF-SHA256(ikm = session key, salt = none, info = FORM_TOKEN_KEY, 32 bytes)

The token is signed, not encrypted: it holds nothing the client that received the page
does not know already (the petition, the time it loaded the page). Nothing here is stored
or logged, and nothing in a token depends on who signs: the identifier is never read
before the token is accepted and used.

This module owns the format and the time window; it must not store anything, know Flask,
or tell a caller more than :class:`Refusal` says (the page shows one message for all).
"""

from __future__ import annotations

import base64
import enum
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anonsign.crypto import labels
from anonsign.errors import AnonsignError

PETITION_ID_SIZE = 16
ISSUED_SIZE = 8
NONCE_SIZE = 16
TAG_SIZE = 32
PAYLOAD_SIZE = PETITION_ID_SIZE + ISSUED_SIZE + NONCE_SIZE
TOKEN_SIZE = PAYLOAD_SIZE + TAG_SIZE
#: 72 bytes are a multiple of 3: base64url has exactly one unpadded spelling of them.
TOKEN_TEXT = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_SIZE * 4 // 3}}}")

HOUR_MS = 3600 * 1000


class Refusal(enum.Enum):
    """Why a token was refused: for tests and the caller, never for the page."""

    MALFORMED = "not a form token"
    FORGED = "not made with this server's key, or altered"
    OTHER_PETITION = "made for another petition"
    TOO_SOON = "posted sooner than a person could"
    TOO_OLD = "older than the form's lifetime"


class FormTokenRefused(AnonsignError):
    """This form has expired or was already used; nothing was signed."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__()
        self.reason = reason


@dataclass(frozen=True)
class AcceptedToken:
    """What the caller keeps to refuse a second use: nothing that names anyone."""

    #: 128 random bits, made when the page was rendered.
    nonce: bytes
    #: The first whole hour (hours since the epoch) in which the token is too old to be
    #: accepted: forgetting the nonce then cannot let it be replayed.
    expires_hour: int


def mac_key(session_key: bytes) -> bytes:
    """The token MAC key, domain-separated from the session key's other uses (cookies)."""
    if len(session_key) < 32:
        raise ValueError(f"session key must be at least 32 bytes, got {len(session_key)}")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=labels.FORM_TOKEN_KEY)
    return hkdf.derive(session_key)


def _tag(key: bytes, payload: bytes) -> hmac.HMAC:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(payload)
    return mac


def encode(key: bytes, petition_id: str, issued_ms: int, nonce: bytes) -> str:
    """The token text for these values (``key`` from :func:`mac_key`)."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    payload = bytes.fromhex(petition_id) + issued_ms.to_bytes(ISSUED_SIZE, "big") + nonce
    if len(payload) != PAYLOAD_SIZE:
        raise ValueError(f"petition id must be {PETITION_ID_SIZE * 2} hex digits")
    raw = payload + _tag(key, payload).finalize()
    return base64.urlsafe_b64encode(raw).decode("ascii")


class FormTokens:
    """Issues and checks tokens under one key and one window, on one clock.

    ``clock`` returns nanoseconds since the epoch (``time.time_ns``: whole numbers, so a
    test that passes its own clock instead of sleeping sets bounds to the millisecond).
    The window is inclusive at both ends: a post exactly ``min_seconds`` or exactly
    ``max_seconds`` after the page was rendered is accepted, one millisecond sooner or
    later is not.
    """

    def __init__(
        self,
        session_key: bytes,
        *,
        min_seconds: float,
        max_seconds: float,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not 0 <= min_seconds < max_seconds:
            raise ValueError("form token window must satisfy 0 <= min < max")
        self._key = mac_key(session_key)
        self.min_ms = round(min_seconds * 1000)
        self.max_ms = round(max_seconds * 1000)
        self.clock = clock

    def now_ms(self) -> int:
        return self.clock() // 1_000_000

    def current_hour(self) -> int:
        """Hours since the epoch, on this clock: what nonce expiries are compared with."""
        return self.now_ms() // HOUR_MS

    def issue(self, petition_id: str) -> str:
        """A fresh token for one rendering of ``petition_id``'s sign form."""
        return encode(self._key, petition_id, self.now_ms(), secrets.token_bytes(NONCE_SIZE))

    def check(self, token: str, petition_id: str) -> AcceptedToken:
        """The nonce to remember if ``token`` may be used now for ``petition_id``.

        Raises :class:`FormTokenRefused`. Says nothing about whether the token was used
        before: that is the caller's memory.
        """
        if not TOKEN_TEXT.fullmatch(token):
            raise FormTokenRefused(Refusal.MALFORMED)
        raw = base64.urlsafe_b64decode(token)
        payload, tag = raw[:PAYLOAD_SIZE], raw[PAYLOAD_SIZE:]
        try:
            _tag(self._key, payload).verify(tag)
        except InvalidSignature:
            raise FormTokenRefused(Refusal.FORGED) from None
        bound = payload[:PETITION_ID_SIZE]
        issued_ms = int.from_bytes(
            payload[PETITION_ID_SIZE : PETITION_ID_SIZE + ISSUED_SIZE], "big"
        )
        if bound.hex() != petition_id:
            # A token from one petition's page is not a licence to post to every other.
            raise FormTokenRefused(Refusal.OTHER_PETITION)
        age_ms = self.now_ms() - issued_ms
        if age_ms < self.min_ms:  # a negative age (a clock stepped back) is too soon too
            raise FormTokenRefused(Refusal.TOO_SOON)
        if age_ms > self.max_ms:
            raise FormTokenRefused(Refusal.TOO_OLD)
        return AcceptedToken(
            nonce=payload[PETITION_ID_SIZE + ISSUED_SIZE :],
            expires_hour=(issued_ms + self.max_ms) // HOUR_MS + 1,
        )
