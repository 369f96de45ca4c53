"""Fixtures the live web tests share."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def sock() -> Iterator[Path]:
    """A path for a server's unix socket, short enough for one (under 108 bytes, which
    pytest's tmp_path can exceed)."""
    folder = Path(tempfile.mkdtemp(prefix="anonsign-", dir="/tmp"))
    try:
        yield folder / "app.sock"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def stats_dir() -> Iterator[Path]:
    """A fresh directory on tmpfs for operator stats, as the default beside the unlocked
    keys is (anonsign.stats.ring refuses any other file system)."""
    path = Path("/dev/shm") / f"anonsign-test-stats-{uuid.uuid4().hex}"  # noqa: S108 - tmpfs
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
