"""Argon2id, the one memory-hard function anonsign uses, and its parameters.

This module owns every call into argon2-cffi: nothing else in anonsign imports
``argon2``, so the algorithm (Argon2id), the version (0x13) and the bounds on its cost
live in one place. It computes raw Argon2id output only; it must not know what the
output is for (dedup keys, key-file encryption keys), choose parameters for a caller,
or produce or check PHC ``$argon2id$...`` password-hash strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw

from anonsign import errors

#: Argon2 version 0x13 (19), the version RFC 9106 specifies.
ARGON2_VERSION = 19

#: Bounds enforced on every parameter set. The memory ceiling keeps a damaged or hostile
#: setting from asking a machine for more than 4 GiB; the time ceiling is Argon2's own
#: 32-bit limit, checked here so a bad value is a ConfigError rather than an OverflowError.
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_TIME_COST = 2**32 - 1
MAX_PARALLELISM = 64

#: Argon2 rejects salts shorter than 8 bytes and outputs shorter than 4 bytes.
MIN_SALT_SIZE = 8
MIN_OUTPUT_SIZE = 4
MAX_OUTPUT_SIZE = 1024


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost: passes over memory, memory in KiB, and lanes."""

    time_cost: int
    memory_kib: int
    parallelism: int

    def __post_init__(self) -> None:
        # Parameters come from configuration and from key files, so a bad value is a
        # person's mistake to be told about, not a crash deep inside argon2-cffi.
        for field in ("time_cost", "memory_kib", "parallelism"):
            value = getattr(self, field)
            if type(value) is not int:
                raise errors.ConfigError(
                    f"Argon2 {field} must be a whole number, not {type(value).__name__}."
                )
        if not 1 <= self.time_cost <= MAX_TIME_COST:
            raise errors.ConfigError(
                f"Argon2 time cost must be between 1 and {MAX_TIME_COST}, not {self.time_cost}."
            )
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            raise errors.ConfigError(
                f"Argon2 parallelism must be between 1 and {MAX_PARALLELISM}, "
                f"not {self.parallelism}."
            )
        if self.memory_kib < 8 * self.parallelism:
            raise errors.ConfigError(
                f"Argon2 memory must be at least 8 KiB per lane "
                f"({8 * self.parallelism} KiB for {self.parallelism}), not {self.memory_kib}."
            )
        if self.memory_kib > MAX_MEMORY_KIB:
            raise errors.ConfigError(
                f"Argon2 memory must be at most {MAX_MEMORY_KIB} KiB (4 GiB), "
                f"not {self.memory_kib}."
            )

    def describe(self) -> str:
        """The parameters as ``t=3 m=262144 p=4`` (the key-file ``kdf:`` line's form)."""
        return f"t={self.time_cost} m={self.memory_kib} p={self.parallelism}"


def argon2id(secret: bytes, salt: bytes, params: Argon2Params, length: int = 32) -> bytes:
    """Return ``length`` bytes of raw Argon2id (version 0x13) output.

    A salt shorter than 8 bytes or a length outside 4..1024 is a programming error
    (``ValueError``). Running out of memory is something a person can fix, so it is
    :class:`errors.KeyDerivationFailed`.
    """
    if len(salt) < MIN_SALT_SIZE:
        raise ValueError(f"Argon2 salt must be at least {MIN_SALT_SIZE} bytes, got {len(salt)}")
    if not MIN_OUTPUT_SIZE <= length <= MAX_OUTPUT_SIZE:
        raise ValueError(
            f"Argon2 output length must be {MIN_OUTPUT_SIZE}..{MAX_OUTPUT_SIZE}, got {length}"
        )
    try:
        return hash_secret_raw(
            secret=secret,
            salt=salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=length,
            type=Type.ID,
            version=ARGON2_VERSION,
        )
    except HashingError as exc:
        # Inputs and parameters are validated above, so what is left is this machine
        # failing to allocate memory_kib (or the lanes' threads).
        raise errors.KeyDerivationFailed() from exc
