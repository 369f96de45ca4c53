"""Witness cosignatures (C2SP tlog-cosignature v1, Ed25519): known answers, the spec's
own examples, and every way a cosignature line can fail."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anonsign.crypto.cosign import (
    BadCosignature,
    CosignatureVerifier,
    NotCosigned,
    WitnessSigner,
    cosignature_key_id,
    cosigned_message,
)
from anonsign.crypto.notes import InvalidVerifierKey, LogSigner, parse_note

SEED = bytes(range(32))
NAME = "witness.example.org/w1"
#: The checkpoint of docs/formats.md (three entries, log key from the same seed).
TEXT = "petitions.example.org/free-the-press\n3\nuo2Ut/vOyue4HEyAV0/iRzSmkXv5wezWb/Pgw06tRiA=\n"
TIME = 1679315147  # the spec's example timestamp

#: Known answers for SEED, NAME, TEXT and TIME (Ed25519 signatures are deterministic).
KAT_VKEY = "witness.example.org/w1+cfcd1a67+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
KAT_LINE = (
    "— witness.example.org/w1 z80aZwAAAABkGFDLoACI8/Wzwawp1M8PnLEzl1JznOnXrT3pcqPjQLsk72sf"
    "85jTcr2/AbImMEYtkfzrezX8cRlkc5crE5crGfiHCw==\n"
)


def test_known_answer() -> None:
    signer = WitnessSigner.from_private_bytes(NAME, SEED)
    assert signer.verifier_key() == KAT_VKEY
    assert signer.cosign(TEXT, TIME) == KAT_LINE


def test_the_known_answer_is_the_spec_built_by_hand() -> None:
    """The same line from the spec's definitions and pyca/cryptography alone."""
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private.public_key().public_bytes_raw()
    key_id = hashlib.sha256(NAME.encode() + b"\n" + b"\x04" + public).digest()[:4]
    message = b"cosignature/v1\ntime 1679315147\n" + TEXT.encode()
    blob = key_id + TIME.to_bytes(8, "big") + private.sign(message)
    assert f"\u2014 {NAME} {base64.b64encode(blob).decode()}\n" == KAT_LINE
    typed_key = base64.b64encode(bytes([4]) + public).decode()
    assert f"{NAME}+{key_id.hex()}+{typed_key}" == KAT_VKEY
    assert cosignature_key_id(NAME, public) == key_id


def test_the_signed_message_is_the_spec_example_byte_for_byte() -> None:
    """c2sp.org/tlog-cosignature, "Ed25519 signed message"."""
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosigned_message(body, 1679315147) == (
        b"cosignature/v1\n"
        b"time 1679315147\n"
        b"example.com/behind-the-sofa\n"
        b"20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_the_spec_example_cosignature_line_has_the_v1_framing() -> None:
    """The spec's example checkpoint parses as one signed note, and its witness line is
    key ID (4) || big-endian timestamp (8) || Ed25519 signature (64), the timestamp being
    the one of its signed-message example (the spec publishes no key to verify it)."""
    example = (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
        "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u"
        "5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
        "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlr"
        "DJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
    )
    witness = parse_note(example).signatures[1]
    assert witness.name == "witness.example.com/w1"
    assert len(witness.key_id + witness.signature) == 4 + 8 + 64
    assert int.from_bytes(witness.signature[:8], "big") == 1679315147


def _note(text: str = TEXT) -> str:
    return LogSigner.from_private_bytes("petitions.example.org", SEED).sign(text)


def test_a_cosigned_checkpoint_is_still_a_note_the_log_key_opens() -> None:
    signer = WitnessSigner.from_private_bytes(NAME, SEED)
    note = _note() + signer.cosign(TEXT, TIME)
    log = LogSigner.from_private_bytes("petitions.example.org", SEED).verifier()
    assert log.open(note) == TEXT  # the witness's line is ignored by the log's key
    assert signer.verifier().timestamp_in(note) == TIME


def test_the_log_key_names_the_cosigners_and_not_itself() -> None:
    # What the audit page and the certificate list: every signature but the log's own.
    log = LogSigner.from_private_bytes("petitions.example.org", SEED)
    first, second = WitnessSigner.generate(NAME), WitnessSigner.generate("other.example")
    note = log.sign(TEXT) + first.cosign(TEXT, TIME) + second.cosign(TEXT, TIME)
    assert [s.name for s in log.verifier().others_in(note)] == [NAME, "other.example"]
    assert log.verifier().others_in(log.sign(TEXT)) == []


def test_lines_by_other_keys_are_ignored_and_none_is_not_cosigned() -> None:
    mine, other = WitnessSigner.generate(NAME), WitnessSigner.generate("other.example")
    note = _note() + other.cosign(TEXT, TIME)
    with pytest.raises(NotCosigned, match=f"no cosignature by {NAME}"):
        mine.verifier().timestamp_in(note)
    assert mine.verifier().timestamp_in(note + mine.cosign(TEXT, 5)) == 5


def test_a_cosignature_of_another_text_or_time_does_not_verify() -> None:
    signer = WitnessSigner.from_private_bytes(NAME, SEED)
    other_text = TEXT.replace("\n3\n", "\n4\n")
    line = signer.cosign(other_text, TIME)
    with pytest.raises(BadCosignature, match="does not verify"):
        signer.verifier().timestamp_in(_note() + line)
    # Rewriting the timestamp in the line breaks the signature too.
    blob = bytearray(base64.b64decode(KAT_LINE.split()[2]))
    blob[11] ^= 1
    changed = f"\u2014 {NAME} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(BadCosignature):
        signer.verifier().timestamp_in(_note() + changed)


def test_a_log_signature_is_not_a_cosignature() -> None:
    """Type 0x01 and 0x04 keys of one name and key differ in key ID, and a log
    signature's bytes have no timestamp: one can never pass for the other."""
    log = LogSigner.from_private_bytes(NAME, SEED)
    witness = WitnessSigner.from_private_bytes(NAME, SEED)
    assert log.key_id != witness.verifier().key_id
    with pytest.raises(NotCosigned):
        witness.verifier().timestamp_in(log.sign(TEXT))


def test_verifier_keys_round_trip_and_are_checked() -> None:
    assert CosignatureVerifier.from_verifier_key(KAT_VKEY + "\n").verifier_key() == KAT_VKEY
    log_vkey = LogSigner.from_private_bytes(NAME, SEED).verifier_key()
    with pytest.raises(
        InvalidVerifierKey, match="type byte 0x01, expected 33 bytes starting with 0x04"
    ):
        CosignatureVerifier.from_verifier_key(log_vkey)
    altered = KAT_VKEY.replace("+cfcd1a67+", "+cfcd1a68+")
    with pytest.raises(InvalidVerifierKey, match="does not match its name and key"):
        CosignatureVerifier.from_verifier_key(altered)


@pytest.mark.parametrize("timestamp", [-1, 1 << 63])
def test_timestamps_stay_in_the_spec_range(timestamp: int) -> None:
    with pytest.raises(ValueError, match="0 to 2"):
        cosigned_message(TEXT, timestamp)


def test_repr_shows_no_private_key() -> None:
    signer = WitnessSigner.from_private_bytes(NAME, SEED)
    assert repr(signer) == "WitnessSigner(name='witness.example.org/w1', key_id=cfcd1a67)"
