"""Argon2id: known answers from the reference implementation, and parameter bounds."""

from __future__ import annotations

import errno
import mmap
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2.low_level import Type, hash_secret_raw

from anonsign import errors
from anonsign.crypto import kdf
from anonsign.crypto.kdf import Argon2Params, argon2id

# Argon2id, version 0x13, 32-byte output, password "password", salt "somesalt": the
# hashtest() vectors of the reference implementation, P-H-C/phc-winner-argon2
# src/test.c (also transcribed in RustCrypto's argon2 tests/kat.rs). The two with 256
# KiB of memory keep the test fast; the second one exercises two lanes.
PHC_VECTORS = [
    (2, 256, 1, "9dfeb910e80bad0311fee20f9c0e2b12c17987b4cac90c2ef54d5b3021c68bfe"),
    (2, 256, 2, "6d093c501fd5999645e0ea3bf620d7b8be7fd2db59c20d9fff9539da2bf57037"),
]


@pytest.mark.parametrize(("t", "m", "p", "expected"), PHC_VECTORS)
def test_argon2id_matches_reference_vectors(t: int, m: int, p: int, expected: str) -> None:
    out = argon2id(b"password", b"somesalt", Argon2Params(t, m, p), 32)
    assert out.hex() == expected


def test_argon2id_output_depends_on_every_input() -> None:
    params = Argon2Params(1, 64, 1)
    base = argon2id(b"secret", b"saltsalt", params)
    assert len(base) == 32
    assert argon2id(b"secret", b"saltsalt", params) == base
    assert argon2id(b"secreT", b"saltsalt", params) != base
    assert argon2id(b"secret", b"saltsalT", params) != base
    assert argon2id(b"secret", b"saltsalt", Argon2Params(2, 64, 1)) != base
    assert argon2id(b"secret", b"saltsalt", Argon2Params(1, 128, 1)) != base
    assert argon2id(b"secret", b"saltsalt", Argon2Params(1, 64, 2)) != base
    assert len(argon2id(b"secret", b"saltsalt", params, 64)) == 64


def test_argon2id_refuses_short_salt_and_bad_lengths() -> None:
    params = Argon2Params(1, 64, 1)
    with pytest.raises(ValueError, match="salt"):
        argon2id(b"secret", b"short", params)
    with pytest.raises(ValueError, match="length"):
        argon2id(b"secret", b"saltsalt", params, 3)
    with pytest.raises(ValueError, match="length"):
        argon2id(b"secret", b"saltsalt", params, 1025)


def test_argon2id_memory_failure_is_a_person_facing_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel refusing the working memory, inside libargon2's allocation callback.
    def refuse(*_: object, **__: object) -> mmap.mmap:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(kdf.mmap, "mmap", refuse)
    with pytest.raises(errors.KeyDerivationFailed, match="not enough free memory"):
        argon2id(b"secret", b"saltsalt", Argon2Params(1, 72, 1))


def test_argon2id_matches_argon2_cffi_s_own_hash() -> None:
    # The working-memory path (argon2_ctx with callbacks) against the library's own call.
    for params in (Argon2Params(3, 4096, 1), Argon2Params(1, 1024, 4), Argon2Params(2, 8, 1)):
        for secret in (b"", b"x", bytes(range(32)) * 4):
            expected = hash_secret_raw(
                secret=secret,
                salt=b"somesalt",
                time_cost=params.time_cost,
                memory_cost=params.memory_kib,
                parallelism=params.parallelism,
                hash_len=32,
                type=Type.ID,
                version=19,
            )
            assert argon2id(secret, b"somesalt", params) == expected


def test_the_kept_working_memory_holds_zeros_not_the_hash_s_blocks() -> None:
    # What a memory dump of a worker between two signatures finds in the buffer kept for
    # the next hash: libargon2 wipes it before handing it back.
    params = Argon2Params(2, 2048, 1)
    argon2id(b"an identifier's HMAC", b"saltsalt", params)
    kept = [buffer for buffer in kdf.working_memory.idle if len(buffer) == 2048 * 1024]
    assert kept, "the working memory was not kept"
    assert kept[0][:] == bytes(2048 * 1024)


def test_the_working_memory_is_reused_and_bounded() -> None:
    params = Argon2Params(1, 1536, 1)
    argon2id(b"one", b"saltsalt", params)
    first = kdf.working_memory.idle
    argon2id(b"two", b"saltsalt", params)
    assert kdf.working_memory.idle == first  # the same mapping, not a new one
    argon2id(b"three", b"saltsalt", Argon2Params(1, 1600, 1))
    assert len(kdf.working_memory.idle) <= kdf.working_memory.KEEP


def test_hashes_at_once_in_threads_each_get_their_own_memory() -> None:
    params = Argon2Params(1, 4096, 1)
    secrets = [bytes([n]) * 16 for n in range(8)]
    expected = [argon2id(secret, b"saltsalt", params) for secret in secrets]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda secret: argon2id(secret, b"saltsalt", params), secrets))
    assert got == expected
    assert len(kdf.working_memory.idle) <= kdf.working_memory.KEEP


@pytest.mark.parametrize(
    ("t", "m", "p", "message"),
    [
        (0, 64, 1, "time cost must be between 1"),
        (-1, 64, 1, "time cost must be between 1"),
        (2**32, 64, 1, "time cost must be between 1"),
        (1, 64, 0, "parallelism must be between 1 and 64"),
        (1, 8 * 65, 65, "parallelism must be between 1 and 64"),
        (1, 7, 1, "at least 8 KiB per lane"),
        (1, 31, 4, "at least 8 KiB per lane"),
        (1, 4 * 1024 * 1024 + 1, 1, "at most 4194304 KiB"),
    ],
)
def test_params_out_of_bounds_are_config_errors(t: int, m: int, p: int, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        Argon2Params(t, m, p)


def test_params_bounds_are_inclusive() -> None:
    Argon2Params(1, 8, 1)
    Argon2Params(1, 8 * 64, 64)
    Argon2Params(1, 4 * 1024 * 1024, 4)


def test_params_must_be_whole_numbers() -> None:
    with pytest.raises(errors.ConfigError, match="whole number"):
        Argon2Params(True, 64, 1)
    with pytest.raises(errors.ConfigError, match="whole number"):
        Argon2Params(1, 64.0, 1)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match="whole number"):
        Argon2Params(1, 64, "1")  # type: ignore[arg-type]


def test_params_error_message_is_one_sentence() -> None:
    with pytest.raises(errors.ConfigError) as info:
        Argon2Params(0, 64, 1)
    assert info.value.message.endswith(".")
    assert "\n" not in info.value.message


def test_params_describe() -> None:
    assert Argon2Params(3, 262144, 4).describe() == "t=3 m=262144 p=4"
