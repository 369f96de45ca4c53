"""The sign-form token (crypto.form_token): its bytes, its MAC and its time window.

Pinned by a known answer and recomputed here with the standard library (RFC 5869 HKDF,
HMAC-SHA256), so the format in the module docstring and docs/formats.md is the format.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from anonsign.crypto import labels
from anonsign.crypto.form_token import (
    HOUR_MS,
    TOKEN_SIZE,
    FormTokenRefused,
    FormTokens,
    Refusal,
    encode,
    mac_key,
)

SESSION_KEY = bytes(range(32))
PETITION = "00112233445566778899aabbccddeeff"
OTHER = "ffeeddccbbaa99887766554433221100"
ISSUED_MS = 1_800_000_000_000
NONCE = bytes(range(100, 116))
KNOWN = (
    "ABEiM0RVZneImaq7zN3u_wAAAaMYXFAAZGVmZ2hpamtsbW5v"
    "cHFyc9AhMwEu5Vx5kq_KzZeSPbSaoKn6Rgq_JKOUiRwIOpb6"
)


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms * 1_000_000


def tokens(clock: Clock, key: bytes = SESSION_KEY) -> FormTokens:
    return FormTokens(key, min_seconds=2, max_seconds=6 * 3600, clock=clock)


def refusal(checker: FormTokens, token: str, petition: str = PETITION) -> Refusal:
    with pytest.raises(FormTokenRefused) as refused:
        checker.check(token, petition)
    return refused.value.reason


def test_form_token_known_answer_and_independent_recomputation() -> None:
    assert encode(mac_key(SESSION_KEY), PETITION, ISSUED_MS, NONCE) == KNOWN
    # RFC 5869 with an empty salt (a string of zeros), one block of output.
    prk = hmac.new(bytes(32), SESSION_KEY, hashlib.sha256).digest()
    key = hmac.new(prk, labels.FORM_TOKEN_KEY + b"\x01", hashlib.sha256).digest()
    payload = bytes.fromhex(PETITION) + ISSUED_MS.to_bytes(8, "big") + NONCE
    raw = payload + hmac.new(key, payload, hashlib.sha256).digest()
    assert len(raw) == TOKEN_SIZE == 72
    assert base64.urlsafe_b64encode(raw).decode() == KNOWN
    assert len(KNOWN) == 96
    assert "=" not in KNOWN


def test_a_genuine_token_gives_its_nonce_and_the_hour_it_may_be_forgotten() -> None:
    clock = Clock(ISSUED_MS + 2000)
    accepted = tokens(clock).check(KNOWN, PETITION)
    assert accepted.nonce == NONCE
    assert accepted.expires_hour == (ISSUED_MS + 6 * 3600 * 1000) // HOUR_MS + 1
    # Forgetting the nonce in that hour is safe: the token is too old by then.
    clock.ms = accepted.expires_hour * HOUR_MS
    assert refusal(tokens(clock), KNOWN) is Refusal.TOO_OLD


def test_the_window_is_inclusive_at_both_ends() -> None:
    clock = Clock(ISSUED_MS)
    checker = tokens(clock)
    for age, outcome in [
        (-1, Refusal.TOO_SOON),  # a clock stepped back
        (0, Refusal.TOO_SOON),
        (1999, Refusal.TOO_SOON),
        (2000, None),
        (6 * 3600 * 1000, None),
        (6 * 3600 * 1000 + 1, Refusal.TOO_OLD),
    ]:
        clock.ms = ISSUED_MS + age
        if outcome is None:
            assert checker.check(KNOWN, PETITION).nonce == NONCE, age
        else:
            assert refusal(checker, KNOWN) is outcome, age


def test_a_token_is_bound_to_its_petition_and_its_key() -> None:
    clock = Clock(ISSUED_MS + 60_000)
    assert refusal(tokens(clock), KNOWN, OTHER) is Refusal.OTHER_PETITION
    assert refusal(tokens(clock, bytes(32)), KNOWN) is Refusal.FORGED


def test_every_altered_byte_is_refused() -> None:
    checker = tokens(Clock(ISSUED_MS + 60_000))
    raw = base64.urlsafe_b64decode(KNOWN)
    for i in range(len(raw)):
        altered = bytearray(raw)
        altered[i] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(altered)).decode()
        assert refusal(checker, token) is Refusal.FORGED, i


@pytest.mark.parametrize(
    "token",
    ["", "x", KNOWN[:-1], KNOWN + "A", KNOWN[:-4] + "====", KNOWN.replace("_", "/"),
     KNOWN[:-1] + "+", KNOWN[:-1] + "é", " " + KNOWN[1:], KNOWN[:-1] + "\x00"],
)  # fmt: skip
def test_anything_but_a_token_is_malformed(token: str) -> None:
    assert refusal(tokens(Clock(ISSUED_MS + 60_000)), token) is Refusal.MALFORMED


def test_issued_tokens_are_fresh_and_check_on_their_own_clock() -> None:
    clock = Clock(ISSUED_MS)
    checker = tokens(clock)
    issued = {checker.issue(PETITION) for _ in range(100)}
    assert len(issued) == 100
    clock.ms += 2000
    nonces = {checker.check(t, PETITION).nonce for t in issued}
    assert len(nonces) == 100


def test_the_window_must_make_sense() -> None:
    with pytest.raises(ValueError, match="window"):
        FormTokens(SESSION_KEY, min_seconds=10, max_seconds=10)
    with pytest.raises(ValueError, match="session key"):
        FormTokens(b"short", min_seconds=0, max_seconds=10)
