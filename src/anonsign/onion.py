"""Version 3 onion host names: the check behind ANONSIGN_ONION_ADDRESS.

Written from Tor's rend-spec-v3, "Encoding onion addresses [ONIONADDRESS]"::

    onion_address = base32(PUBKEY | CHECKSUM | VERSION) + ".onion"
    CHECKSUM = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2]

A mistyped address would send every reader Tor Browser redirects to a service that does
not exist, so the checksum is verified, not only the shape. Stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Final

VERSION: Final = b"\x03"
CHECKSUM_LABEL: Final = b".onion checksum"
_SHAPE: Final = re.compile(r"[a-z2-7]{56}\.onion")


def is_v3_onion_address(host: str) -> bool:
    """True for a lowercase v3 onion host name whose version byte and checksum are right."""
    if not _SHAPE.fullmatch(host):
        return False
    try:
        raw = base64.b32decode(host.removesuffix(".onion").upper())
    except binascii.Error:
        return False
    pubkey, checksum, version = raw[:32], raw[32:34], raw[34:]
    expected = hashlib.sha3_256(CHECKSUM_LABEL + pubkey + version).digest()[:2]
    return version == VERSION and checksum == expected


def v3_onion_address(pubkey: bytes) -> str:
    """The onion host name of an Ed25519 public key (tests, and to explain the format)."""
    checksum = hashlib.sha3_256(CHECKSUM_LABEL + pubkey + VERSION).digest()[:2]
    return base64.b32encode(pubkey + checksum + VERSION).decode("ascii").lower() + ".onion"
