"""An honest 50-entry log, its signer and its bundle, shared by the audit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.logserver import HonestLog, make_log, write_log_bundle

from anonsign.crypto.notes import LogSigner


@pytest.fixture(scope="session")
def signer() -> LogSigner:
    return LogSigner.generate("log.example")


@pytest.fixture(scope="session")
def other_signer() -> LogSigner:
    """Another key, by the same name: what an impostor server would sign with."""
    return LogSigner.generate("log.example")


@pytest.fixture
def log(signer: LogSigner) -> HonestLog:
    return make_log(50, signer)


@pytest.fixture
def bundle_dir(tmp_path: Path, log: HonestLog) -> Path:
    return write_log_bundle(tmp_path / "bundle", log)
