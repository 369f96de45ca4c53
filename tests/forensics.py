"""What an adversary reads: files on a seized disk, pages decrypted with a stolen key,
the memory of running processes.

Test helpers only. They look where an attacker looks (raw bytes of every file, every
readable mapping of a process) rather than asking the code what it keeps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from anonsign.crypto.store import sqlcipher_key

PAGE_SIZE = 4096
#: SQLCipher 4's reserve at the end of every page: IV (16) then HMAC-SHA512 (64).
RESERVE = 16 + 64
SALT_SIZE = 16


def files_under(folder: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield str(path), path.read_bytes()


def readable_without_key(path: Path) -> bool:
    """Whether SQLite itself (no key) opens ``path`` as a database and reads its schema."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()
    return True


def decrypted_pages(data: bytes, store_key: bytes) -> list[bytes]:
    """Every page of an SQLCipher 4 file, decrypted as a holder of the key would.

    Written from SQLCipher's page format (AES-256-CBC over each page but its reserve, the
    IV in the reserve; page 1 starts with the file's salt), not through SQLCipher, so the
    physical layout is seen exactly as it lies on disk.
    """
    key = sqlcipher_key(store_key)
    pages = []
    for number in range(len(data) // PAGE_SIZE):
        page = data[number * PAGE_SIZE : (number + 1) * PAGE_SIZE]
        start = SALT_SIZE if number == 0 else 0
        iv = page[PAGE_SIZE - RESERVE : PAGE_SIZE - RESERVE + 16]
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        plain = decryptor.update(page[start : PAGE_SIZE - RESERVE]) + decryptor.finalize()
        pages.append(bytes(start) + plain + bytes(RESERVE))
    return pages


def first_offsets(data: bytes, needles: Iterable[bytes]) -> dict[bytes, int]:
    """Where each needle first occurs in ``data`` (needles not found are left out)."""
    found = {}
    for needle in needles:
        at = data.find(needle)
        if at >= 0:
            found[needle] = at
    return found


def kendall_tau(xs: list[float], ys: list[float]) -> float:
    """Kendall's rank correlation (tau-a): +1 same order, -1 reversed, about 0 unrelated."""
    n = len(xs)
    score = 0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = xs[i] - xs[j], ys[i] - ys[j]
            score += (a * b > 0) - (a * b < 0)
    return score / (n * (n - 1) / 2)


# --- process memory -------------------------------------------------------------------


class MemoryUnreadable(Exception):
    """The system does not let this test read another process's memory."""


def process_memory(pid: int) -> Iterator[bytes]:
    """Every readable mapping of process ``pid``, as /proc/PID/mem gives it."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", buffering=0)  # noqa: SIM115 - closed below
    except PermissionError as exc:
        raise MemoryUnreadable(str(exc)) from None
    except FileNotFoundError:
        return
    with mem:
        for line in maps:
            fields = line.split()
            span, perms = fields[0], fields[1]
            name = fields[5] if len(fields) > 5 else ""
            if not perms.startswith("r") or name in {"[vvar]", "[vsyscall]", "[vvar_vclock]"}:
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                yield mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue


def found_in_memory(pids: Iterable[int], needles: dict[str, bytes]) -> dict[int, list[str]]:
    """For each process, the names of the needles its memory holds."""
    hits: dict[int, list[str]] = {}
    for pid in pids:
        names = set()
        for region in process_memory(pid):
            names |= {name for name, needle in needles.items() if needle in region}
        if names:
            hits[pid] = sorted(names)
    return hits
