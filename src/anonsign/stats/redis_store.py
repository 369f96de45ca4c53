"""Stats in Redis, shared by every host that serves the petitions.

One hash per petition and ten-minute step, ``anonsign:stats:<slug>:<step>``, with the
fields ``accepted``, ``limited`` and ``shed``; each expires :data:`KEPT_SECONDS` after its
step began (plus a step), so Redis forgets the counts as the tmpfs ring does. The key
holds the petition's public slug and a step of the clock, nothing about a client. A
worker's count is one pipelined ``HINCRBY`` and ``EXPIREAT``, with the same short
timeouts as the limiter's, so a Redis that hangs costs a post at most that long and the
answer is still given (anonsign.stats.Recorder).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import redis

from anonsign.stats import (
    BUCKET_SECONDS,
    KEPT_BUCKETS,
    KEPT_SECONDS,
    Buckets,
    Counts,
    Outcome,
    bucket_of,
)

PREFIX = "anonsign:stats:"
#: Seconds before a Redis that does not answer is given up on (as the limiter does).
TIMEOUT_SECONDS = 2


def key(slug: str, bucket: int) -> str:
    return f"{PREFIX}{slug}:{bucket}"


def _shown(uri: str) -> str:
    """The URI without a password, for messages."""
    parts = urlsplit(uri)
    host = parts.hostname or parts.path or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class RedisStats:
    """Counters in Redis (see the module docstring)."""

    def __init__(self, client: redis.Redis, description: str) -> None:
        self.client = client
        self.description = description

    @classmethod
    def from_uri(cls, uri: str) -> RedisStats:
        client = redis.Redis.from_url(
            uri, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        return cls(client, f"Redis at {_shown(uri)}")

    def add(self, slug: str, outcome: Outcome, now: float) -> None:
        bucket = bucket_of(now)
        name = key(slug, bucket)
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(name, outcome.value, 1)
        pipe.expireat(name, (bucket + 1) * BUCKET_SECONDS + KEPT_SECONDS)
        pipe.execute()

    def read(self, slugs: Iterable[str], now: float) -> Mapping[str, Buckets]:
        last = bucket_of(now)
        steps = range(last - KEPT_BUCKETS + 1, last + 1)
        slugs = list(slugs)
        pipe = self.client.pipeline(transaction=False)
        for slug in slugs:
            for step in steps:
                pipe.hgetall(key(slug, step))
        answers = iter(pipe.execute())
        result: dict[str, Buckets] = {}
        for slug in slugs:
            buckets = Buckets()
            for step in steps:
                fields = {k.decode(): int(v) for k, v in next(answers).items()}
                if fields:
                    buckets.by_bucket[step] = Counts(
                        fields.get("accepted", 0), fields.get("limited", 0), fields.get("shed", 0)
                    )
            result[slug] = buckets
        return result
