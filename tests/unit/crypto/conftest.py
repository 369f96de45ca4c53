"""Organizer keys shared by the crypto tests.

The key-file KDF is made cheap by ``cheap_keyfile_kdf`` in tests/conftest.py; tests that
need the real cost mark themselves ``real_kdf``.
"""

from __future__ import annotations

import pytest

from anonsign.crypto.kdf import Argon2Params
from anonsign.crypto.keyfile import OrganizerSecretKey

CHEAP_KDF = Argon2Params(time_cost=1, memory_kib=8192, parallelism=1)


@pytest.fixture(scope="session")
def org_keys() -> tuple[OrganizerSecretKey, OrganizerSecretKey, OrganizerSecretKey]:
    """Three organizer keys, shared by the session: generating them is cheap but not free."""
    return (
        OrganizerSecretKey.generate(),
        OrganizerSecretKey.generate(),
        OrganizerSecretKey.generate(),
    )


@pytest.fixture(scope="session")
def outsider_key() -> OrganizerSecretKey:
    """A key that is never among a petition's recipients."""
    return OrganizerSecretKey.generate()
