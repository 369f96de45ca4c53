"""Fixtures the live web tests share."""

from __future__ import annotations

import shutil
import tempfile
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
