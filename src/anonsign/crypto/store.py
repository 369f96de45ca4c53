"""The key that encrypts the SQLite store at rest, and the one way it reaches SQLCipher.

Why SQLCipher: a B-tree keyed by random values still keeps arrival order in each page's
cell content and in the WAL's frames, and an unencrypted file shows every dedup key and
sealed contact to whoever images the disk. SQLCipher (4.x: AES-256-CBC per page with a
random IV, HMAC-SHA512 over every page, a random per-file salt in place of the SQLite
header) encrypts every page of the database, its WAL frames and its rollback journals,
so a powered-off disk shows nothing but sizes and the page numbers of the WAL's frame
headers. It is the one widely deployed page-level encryption for SQLite (Signal, Mozilla
and others ship it), it keeps SQLite's durability and locking unchanged, and the
``sqlcipher3`` driver plugs into SQLAlchemy's ordinary ``sqlite`` dialect. Alternatives
were weaker here: a file-system layer (LUKS, fscrypt) is unlocked for the whole machine
while it runs and is the operator's choice, not ours; encrypting columns leaves order and
structure in clear.

Format (v1): the page key is ``HKDF-SHA256(ikm=store key, salt=none, info=
STORE_SQLCIPHER_KEY, 32 bytes)`` and is given to SQLCipher as a *raw* key
(``PRAGMA key = "x'<64 hex digits>'"``), which skips SQLCipher's own PBKDF2: the store
key is already 32 uniformly random bytes, kept under the operator's unlock passphrase
(Argon2id 256 MiB) like the master key. The pragma is built here, in memory, and
executed on each new connection: the key never appears in a URL, an environment
variable, an argument list or a log.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anonsign.crypto import labels
from anonsign.crypto.master import STORE_KEY_SIZE

SQLCIPHER_KEY_SIZE = 32


def sqlcipher_key(store_key: bytes) -> bytes:
    """The 32-byte SQLCipher page key for ``store_key`` (domain-separated by HKDF)."""
    if len(store_key) != STORE_KEY_SIZE:
        raise ValueError(f"store key must be {STORE_KEY_SIZE} bytes, got {len(store_key)}")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=SQLCIPHER_KEY_SIZE,
        salt=None,
        info=labels.STORE_SQLCIPHER_KEY,
    ).derive(store_key)


def key_pragma(store_key: bytes) -> str:
    """The ``PRAGMA key`` statement that opens (or creates) the store with ``store_key``.

    Hex digits only, so the statement cannot be anything else whatever the key is.
    """
    return f"PRAGMA key = \"x'{sqlcipher_key(store_key).hex()}'\""


def attach_statement(path: str, store_key: bytes, schema: str) -> str:
    """``ATTACH`` of an encrypted database file under ``store_key`` (used to convert)."""
    quoted = path.replace("'", "''")
    return f"ATTACH DATABASE '{quoted}' AS {schema} KEY \"x'{sqlcipher_key(store_key).hex()}'\""
