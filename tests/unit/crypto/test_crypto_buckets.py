"""Rate-limit bucket names: keyed, pinned, rotated, and never the address itself."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re

from anonsign.crypto import labels
from anonsign.crypto.buckets import BucketKey, bucket_name

KEY = bytes(range(32))
CIRCUIT = "fc00:dead:beef:4dad::ab:cd"
#: HMAC-SHA256(00..1f, "anonsign/ratelimit/bucket/v1" || 0x00 || CIRCUIT), first 16
#: bytes, pinned as text so that a changed label or construction cannot pass unseen.
KNOWN_ANSWER = "55dc2cc9bf810f89ac364ce5ddd4cdaf"


def test_bucket_name_known_answer() -> None:
    assert labels.RATELIMIT_BUCKET == b"anonsign/ratelimit/bucket/v1"
    assert bucket_name(KEY, CIRCUIT) == KNOWN_ANSWER
    expected = hmac.new(KEY, labels.RATELIMIT_BUCKET + b"\x00" + CIRCUIT.encode(), hashlib.sha256)
    assert bucket_name(KEY, CIRCUIT) == expected.hexdigest()[:32]


def test_a_bucket_name_holds_no_form_of_the_address() -> None:
    circuit_id = 0x00AB00CD
    name = bucket_name(KEY, CIRCUIT)
    assert re.fullmatch(r"[0-9a-f]{32}", name)
    forms = {
        CIRCUIT,
        ipaddress.ip_address(CIRCUIT).exploded,
        str(circuit_id),
        f"{circuit_id:x}",
        f"{circuit_id:08x}",
        "ab:cd",
    }
    assert not [form for form in forms if form in name]
    # A plain hash would be enumerable (32-bit circuit ids, IPv4): the key changes it.
    assert name != hashlib.sha256(CIRCUIT.encode()).hexdigest()[:32]


def test_one_key_names_one_peer_alike_and_two_peers_apart() -> None:
    key = BucketKey()
    assert key.name(CIRCUIT) == key.name(CIRCUIT)
    assert key.name(CIRCUIT) != key.name("fc00:dead:beef:4dad::ab:ce")
    assert key.name("198.51.100.7") != key.name("198.51.100.8")


def test_each_process_key_is_its_own() -> None:
    # Two processes (two workers) have two keys: the same circuit, two bucket names.
    assert BucketKey().name(CIRCUIT) != BucketKey().name(CIRCUIT)


def test_the_key_is_replaced_after_its_rotation_period() -> None:
    now = [1000.0]
    key = BucketKey(rotation=3600, clock=lambda: now[0])
    before = key.name(CIRCUIT)
    now[0] += 3599
    assert key.name(CIRCUIT) == before
    now[0] += 1
    after = key.name(CIRCUIT)
    assert after != before
    assert key.name(CIRCUIT) == after
