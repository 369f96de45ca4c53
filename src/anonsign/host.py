"""What this machine has: its memory, or its container's limit when that is smaller.

``anonsign calibrate`` and the hashing gate (anonsign.web.capacity) size Argon2id from the
same memory budget; when ``ANONSIGN_MEMORY_BUDGET_MIB`` is unset, both take half of what
this returns, so the cost calibrate recommends is the one the server then admits.
"""

from __future__ import annotations

import os
from pathlib import Path


def _cgroup_limit_bytes() -> int | None:
    """The tightest cgroup v2 ``memory.max`` from this process's cgroup up (containers)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None:
        return None
    limits = []
    folder = Path("/sys/fs/cgroup") / path.lstrip("/")
    for directory in (folder, *folder.parents):
        try:
            value = (directory / "memory.max").read_text().strip()
        except OSError:
            value = "max"
        if value.isdigit():
            limits.append(int(value))
        if directory == Path("/sys/fs/cgroup"):
            break
    return min(limits) if limits else None


def machine_memory_mib() -> int:
    """Physical memory, or the container's limit when that is smaller."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = _cgroup_limit_bytes()
    return min(physical, limit) // (1024 * 1024) if limit else physical // (1024 * 1024)


def default_budget_mib() -> int:
    """Half the machine's memory: the rest is for the system, tor and the workers' Python."""
    return max(1, machine_memory_mib() // 2)
