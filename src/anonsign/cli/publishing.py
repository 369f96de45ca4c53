"""What ``log publish`` says when it publishes nothing: how many wait, and until when.

Signatures enter the public log in batches (SECURITY.md, "batched publication"), so an
organizer who sees "nothing to publish" while people have signed thinks signatures were
lost. The line says how many wait and which of the two conditions of a batch
(``ANONSIGN_PUBLISH_MIN`` signatures, ``ANONSIGN_PUBLISH_INTERVAL`` seconds since the
hour of the last checkpoint) is not met yet.
"""

from __future__ import annotations

import time

from anonsign.publisher import PublishPolicy
from anonsign.service import PublishStatus


def _signatures(count: int) -> str:
    return f"{count:,} signature{'s' if count != 1 else ''}"


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))


def not_published_line(
    slug: str, status: PublishStatus, policy: PublishPolicy, *, now: float | None = None
) -> str:
    """One line for a petition whose ``publish`` added nothing."""
    now = time.time() if now is None else now
    if status.waiting == 0:
        return f"{slug}: nothing new waits; the public log holds {_signatures(status.published)}."
    missing = []
    if status.waiting < policy.min_pending:
        missing.append(f"a batch needs {policy.min_pending:,} (ANONSIGN_PUBLISH_MIN)")
    if policy.interval_seconds > 0 and now < status.interval_ends:
        missing.append(
            f"the next batch is due from {_utc(status.interval_ends)} (ANONSIGN_PUBLISH_INTERVAL "
            "after the hour of the last checkpoint)"
        )
    why = " and ".join(missing) or "another process published them meanwhile"
    return (
        f"{slug}: {_signatures(status.waiting)} wait, not published yet: {why}. "
        f"`anonsign log publish {slug}` (without --due) publishes them now."
    )
