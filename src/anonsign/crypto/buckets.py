"""Rate-limit bucket names: a peer address made into a name nobody can turn back.

The per-circuit and per-peer rate limits (anonsign.web.limits) need a stable name for
"this Tor circuit" or "this clearnet peer" for a minute or two, and nothing more. Storing
the address itself would put it in the limiter's storage (Flask-Limiter's keys embed the
key function's value as it is: ``LIMITER/203.0.113.7/...``); a plain hash would not help
either, because IPv4 addresses and Tor circuit ids are both 32-bit numbers anyone can
enumerate. So the name is::

    bucket = HMAC-SHA256(key, RATELIMIT_BUCKET || 0x00 || address)[:16 bytes], in hex

under a random key made in this process, kept only in its memory, and replaced every
hour: it is never written to disk, to the limiter's storage or to another process. After
a rotation (or once the process has exited) no one, the server's holder included, can
tell which address a name stood for. This module owns that construction and the key; it
must not see requests, log, or store anything.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, hmac

from anonsign.crypto import labels

BUCKET_KEY_SIZE = 32
#: 128 bits: no two peers share a bucket by accident; more would only lengthen keys.
BUCKET_NAME_BYTES = 16
#: How long one key names buckets. A bucket counts for at most a window (a minute by
#: default), so an hour loses nothing but a fresh bucket for each peer once an hour.
ROTATION_SECONDS = 3600.0


def bucket_name(key: bytes, address: str) -> str:
    """The bucket of ``address`` under ``key``: 32 hex digits that do not contain it."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(labels.RATELIMIT_BUCKET + b"\x00" + address.encode())
    return mac.finalize()[:BUCKET_NAME_BYTES].hex()


class BucketKey:
    """A random key that lives in this process's memory only and is replaced hourly."""

    def __init__(
        self,
        rotation: float = ROTATION_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rotation = rotation
        self._clock = clock
        self._key = secrets.token_bytes(BUCKET_KEY_SIZE)
        self._made = clock()

    def name(self, address: str) -> str:
        now = self._clock()
        if now - self._made >= self._rotation:
            # Rebinding drops the last reference to the old key; what CPython does with
            # freed memory is SECURITY.md's "memory residue" (bounded by worker recycling).
            self._key = secrets.token_bytes(BUCKET_KEY_SIZE)
            self._made = now
        return bucket_name(self._key, address)
