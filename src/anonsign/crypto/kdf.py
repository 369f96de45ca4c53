"""Argon2id, the one memory-hard function anonsign uses, and its parameters.

This module owns every call into argon2-cffi: nothing else in anonsign imports
``argon2``, so the algorithm (Argon2id), the version (0x13) and the bounds on its cost
live in one place. It computes raw Argon2id output only; it must not know what the
output is for (dedup keys, key-file encryption keys), choose parameters for a caller,
or produce or check PHC ``$argon2id$...`` password-hash strings.

**Working memory.** argon2-cffi's ``hash_secret_raw`` lets libargon2 ``malloc`` its
memory afresh for every hash: 64 MiB by default, which glibc always maps anew, so the
kernel takes a page fault and zeroes a page 16,384 times per hash, a quarter of the
hash's CPU time on the machines this was measured on (bench/README.md,
"Argon2id's working memory"). :class:`_WorkingMemory` lends libargon2 memory of its own
through argon2-cffi's low-level ``core`` (the ``argon2_ctx`` binding, with the
context's allocation callbacks): mapped once, in transparent huge pages where the kernel
offers them (``MADV_HUGEPAGE``), and kept for the next hash. libargon2 wipes its memory
before it hands it back (``clear_internal_memory``, on by default), so what is kept
holds zeros, never a block derived from a secret (tests/unit/crypto/test_crypto_kdf.py
reads it). Where the callbacks cannot be made (a platform that forbids cffi's
trampolines), ``hash_secret_raw`` is used as before: the same output, only slower.
"""

from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass
from typing import Any

import argon2.low_level
from argon2.exceptions import HashingError
from argon2.low_level import Type, core, error_to_str, ffi, hash_secret_raw

from anonsign import errors

# The bindings' constants (ARGON2_OK, the flags), as argon2.low_level itself uses them.
lib: Any = getattr(argon2.low_level, "lib")  # noqa: B009 - not in the module's __all__

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


class _WorkingMemory:
    """Memory lent to libargon2, mapped once and kept for the next hash (module docstring).

    At most :data:`KEEP` idle buffers stay mapped per process (the most recently
    returned); hashes that run at once each get a buffer (a new one when none of their
    size is idle), and what is not kept is unmapped when it comes back. The callbacks
    run in libargon2's call, with the GIL taken back by cffi; a lock keeps the threads
    of a threaded worker apart.
    """

    #: Idle buffers kept per process: one is enough for a worker that hashes one at a
    #: time, and bounds what an idle process holds to one hash's memory.
    KEEP = 1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[mmap.mmap] = []
        # address -> (buffer, its cdata view): lent to a hash running now.
        self._lent: dict[int, tuple[mmap.mmap, Any]] = {}
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # A thread of the parent may have held the lock at the fork; the child's threads
        # start afresh, and the parent's lent buffers are not the child's to return.
        self._lock = threading.Lock()
        self._lent = {}

    @property
    def idle(self) -> list[mmap.mmap]:
        """The buffers kept for the next hash (read by the tests: they hold zeros)."""
        with self._lock:
            return list(self._idle)

    def allocate(self, memory: Any, size: int) -> int:
        memory[0] = ffi.NULL
        with self._lock:
            buffer = next((b for b in self._idle if len(b) == size), None)
            if buffer is not None:
                self._idle.remove(buffer)
        if buffer is None:
            buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            if hasattr(mmap, "MADV_HUGEPAGE"):
                buffer.madvise(mmap.MADV_HUGEPAGE)
        view = ffi.from_buffer(buffer)
        address = int(ffi.cast("uintptr_t", view))
        with self._lock:
            self._lent[address] = (buffer, view)
        memory[0] = ffi.cast("uint8_t *", view)
        return int(lib.ARGON2_OK)

    def release(self, memory: Any, size: int) -> None:
        with self._lock:
            lent = self._lent.pop(int(ffi.cast("uintptr_t", memory)), None)
            if lent is None:
                return
            # Kept, in place of the oldest idle one: the size last used is the likeliest next.
            self._idle.append(lent[0])
            dropped = self._idle[: -self.KEEP]
            del self._idle[: -self.KEEP]
        for buffer in dropped:
            buffer.close()


def _callbacks(memory: _WorkingMemory) -> tuple[Any, Any] | None:
    """cffi trampolines for libargon2's allocation callbacks, or None where refused."""

    def refused(*_: object) -> None:
        # An exception in the allocator leaves the memory pointer NULL, which libargon2
        # answers with ARGON2_MEMORY_ALLOCATION_ERROR: a KeyDerivationFailed, not a crash.
        return None

    try:
        allocate = ffi.callback(
            "int(uint8_t **, size_t)",
            memory.allocate,
            error=int(lib.ARGON2_MEMORY_ALLOCATION_ERROR),
            onerror=refused,
        )
        release = ffi.callback("void(uint8_t *, size_t)", memory.release, onerror=refused)
    except (MemoryError, OSError, RuntimeError):  # pragma: no cover - hardened platforms
        return None
    return allocate, release


working_memory = _WorkingMemory()
_CALLBACKS = _callbacks(working_memory)


def _argon2id_core(
    secret: bytes, salt: bytes, params: Argon2Params, length: int, callbacks: tuple[Any, Any]
) -> bytes:
    """Raw Argon2id through ``argon2_ctx``, in :data:`working_memory`."""
    out = ffi.new("uint8_t[]", length)
    pwd = ffi.new("uint8_t[]", secret)
    salt_buffer = ffi.new("uint8_t[]", salt)
    context = ffi.new(
        "argon2_context *",
        {
            "out": out,
            "outlen": length,
            "pwd": pwd,
            "pwdlen": len(secret),
            "salt": salt_buffer,
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": params.time_cost,
            "m_cost": params.memory_kib,
            "lanes": params.parallelism,
            "threads": params.parallelism,
            "version": ARGON2_VERSION,
            "allocate_cbk": callbacks[0],
            "free_cbk": callbacks[1],
            # libargon2 wipes its copy of the secret once it has been read.
            "flags": lib.ARGON2_FLAG_CLEAR_PASSWORD,
        },
    )
    result = core(context, Type.ID.value)
    if result != lib.ARGON2_OK:
        raise HashingError(error_to_str(result))
    return bytes(ffi.buffer(out, length))


def _hash_raw(secret: bytes, salt: bytes, params: Argon2Params, length: int) -> bytes:
    if _CALLBACKS is None:  # pragma: no cover - hardened platforms
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
    return _argon2id_core(secret, salt, params, length, _CALLBACKS)


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
        return _hash_raw(secret, salt, params, length)
    except HashingError as exc:
        # Inputs and parameters are validated above, so what is left is this machine
        # failing to allocate memory_kib (or the lanes' threads).
        raise errors.KeyDerivationFailed() from exc
