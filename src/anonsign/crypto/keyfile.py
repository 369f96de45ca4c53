"""Organizer secret keys and their passphrase-protected key file. OFFLINE ONLY.

This module owns the organizer secret key (an ML-KEM-768 seed and an X25519 private
key) and the secret key file format. It runs on the organizers' offline machine; the
server and the web process must never import it (a test enforces this for ``seal``).
It must not write files or ask for passphrases (the CLI does both), and must never
fall back to PKCS#8 ``BestAvailableEncryption``, whose 2,048 PBKDF2 rounds a stolen
laptop's disk would not survive.

Secret key file, format v1 (UTF-8 text, ``\\n`` line ends, exactly these six lines)::

    anonsign-secret-key-v1
    name: NAME
    kdf: argon2id t=3 m=262144 p=4
    salt: <standard base64, padded, of 16 random bytes>
    public: anonsign-organizer-v1:...
    secret: <standard base64, padded, of nonce (12) || ciphertext (96 + 16-byte tag)>

    key   = Argon2id(NFC(passphrase) as UTF-8, salt, t, m, p, 32 bytes)
    plain = ML-KEM-768 seed (64) || X25519 private key (32)
    aad   = SECRET_KEY_FILE_AEAD || 0x00 || the five lines before "secret:" joined by "\\n"
    secret = nonce || ChaCha20-Poly1305(key).encrypt(nonce, plain, aad)

Because the first five lines are associated data, editing the name, the public key or
the KDF cost makes the file fail to open. The KDF cost is read from the file, so files
written with a stronger cost stay readable, but a file below ``MIN_KEYFILE_KDF`` is
refused before any passphrase is tried.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import unicodedata
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from anonsign import errors
from anonsign.crypto import labels
from anonsign.crypto.kdf import Argon2Params, argon2id
from anonsign.crypto.keys import OrganizerPublicKey, validate_key_name

MLKEM768_SEED_SIZE = 64
X25519_PRIVATE_SIZE = 32
SECRET_KEY_SIZE = MLKEM768_SEED_SIZE + X25519_PRIVATE_SIZE
SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
SECRET_FIELD_SIZE = NONCE_SIZE + SECRET_KEY_SIZE + TAG_SIZE

#: Cost used when writing a key file: RFC 9106's second recommended option (t=3, p=4)
#: with four times its 64 MiB of memory, because an organizer opens the file a handful
#: of times while a thief holding a copy can guess for ever.
KEYFILE_KDF = Argon2Params(time_cost=3, memory_kib=262144, parallelism=4)

#: The weakest cost accepted when reading. Only time and memory are floors: fewer lanes
#: over the same memory is no cheaper to attack.
MIN_KEYFILE_KDF = Argon2Params(time_cost=3, memory_kib=262144, parallelism=4)

#: A ceiling on passes when reading, so a damaged digit (t=3 becoming t=30000000) is an
#: error rather than a machine that seems to hang; memory is capped by Argon2Params.
MAX_KEYFILE_TIME_COST = 64

#: Real key files are about 2 KB; refusing far larger files avoids reading a disk image.
MAX_KEY_FILE_BYTES = 64 * 1024

_KDF_LINE = re.compile(r"argon2id t=([0-9]{1,10}) m=([0-9]{1,10}) p=([0-9]{1,3})")
_FIELDS = ("name", "kdf", "salt", "public", "secret")


class OrganizerSecretKey:
    """An organizer's secret key: the ML-KEM-768 seed and the X25519 private key."""

    __slots__ = ("_mlkem", "_x25519")

    def __init__(
        self, mlkem_key: mlkem.MLKEM768PrivateKey, x25519_key: x25519.X25519PrivateKey
    ) -> None:
        self._mlkem = mlkem_key
        self._x25519 = x25519_key

    @classmethod
    def generate(cls) -> OrganizerSecretKey:
        """A fresh random organizer key."""
        return cls(mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> OrganizerSecretKey:
        """The inverse of :meth:`private_bytes_raw` (64-byte seed || 32-byte X25519 key)."""
        if len(data) != SECRET_KEY_SIZE:
            raise ValueError(f"an organizer secret key is {SECRET_KEY_SIZE} bytes, not {len(data)}")
        return cls(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(data[:MLKEM768_SEED_SIZE]),
            x25519.X25519PrivateKey.from_private_bytes(data[MLKEM768_SEED_SIZE:]),
        )

    def private_bytes_raw(self) -> bytes:
        """ML-KEM-768 seed (64) || X25519 private key (32): only for the key file."""
        return self._mlkem.private_bytes_raw() + self._x25519.private_bytes_raw()

    def public_key(self) -> OrganizerPublicKey:
        """The matching organizer public key."""
        return OrganizerPublicKey(
            self._mlkem.public_key().public_bytes_raw()
            + self._x25519.public_key().public_bytes_raw()
        )

    def hpke_key(self) -> hpke.MLKEM768X25519PrivateKey:
        """The HPKE private key for the ``MLKEM768-X25519`` KEM."""
        return hpke.MLKEM768X25519PrivateKey(self._mlkem, self._x25519)

    def __repr__(self) -> str:
        # Never the secret bytes: reprs end up in logs and tracebacks.
        return f"OrganizerSecretKey(fingerprint={self.public_key().fingerprint!r})"


def _derive(passphrase: str, salt: bytes, params: Argon2Params) -> bytes:
    # NFC so the same passphrase typed on two keyboards (é as one code point or as e plus
    # a combining accent) derives the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return argon2id(secret, salt, params, 32)


def _aad(lines: list[str]) -> bytes:
    return labels.SECRET_KEY_FILE_AEAD + b"\x00" + "\n".join(lines).encode("utf-8")


def encrypt_secret_key(key: OrganizerSecretKey, passphrase: str, name: str) -> str:
    """The secret key file text for ``key`` under ``passphrase`` (format in the docstring)."""
    validate_key_name(name)
    if not passphrase:
        raise errors.EmptyPassphrase()
    params = KEYFILE_KDF
    salt = secrets.token_bytes(SALT_SIZE)
    lines = [
        labels.SECRET_KEY_FILE_HEADER,
        f"name: {name}",
        f"kdf: argon2id {params.describe()}",
        f"salt: {base64.b64encode(salt).decode('ascii')}",
        f"public: {key.public_key().to_text()}",
    ]
    nonce = secrets.token_bytes(NONCE_SIZE)
    ciphertext = ChaCha20Poly1305(_derive(passphrase, salt, params)).encrypt(
        nonce, key.private_bytes_raw(), _aad(lines)
    )
    lines.append(f"secret: {base64.b64encode(nonce + ciphertext).decode('ascii')}")
    return "\n".join(lines) + "\n"


def _b64_field(value: str, field: str, size: int) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.KeyFileError(
            f"This key file's {field} line is damaged (not valid base64)."
        ) from None
    if len(data) != size:
        raise errors.KeyFileError(
            f"This key file's {field} line is damaged or cut short "
            f"({len(data)} bytes instead of {size})."
        )
    return data


def _parse_kdf(value: str) -> Argon2Params:
    match = _KDF_LINE.fullmatch(value)
    if match is None:
        raise errors.KeyFileError(
            "This key file's kdf line is damaged (expected: argon2id t=... m=... p=...)."
        )
    try:
        params = Argon2Params(*(int(group) for group in match.groups()))
    except errors.ConfigError as exc:
        raise errors.KeyFileError(f"This key file's kdf line is invalid: {exc}") from None
    floor = MIN_KEYFILE_KDF
    if params.time_cost < floor.time_cost or params.memory_kib < floor.memory_kib:
        raise errors.WeakKeyFile(
            f"This key file's passphrase protection ({params.describe()}) is weaker than "
            f"anonsign allows (at least t={floor.time_cost} m={floor.memory_kib}), so it "
            f"was altered or not made by this version of anonsign."
        )
    if params.time_cost > MAX_KEYFILE_TIME_COST:
        raise errors.KeyFileError(
            f"This key file's kdf line asks for {params.time_cost} passes "
            f"(at most {MAX_KEYFILE_TIME_COST}); the file is damaged."
        )
    return params


def decrypt_secret_key(text: str, passphrase: str) -> tuple[str, OrganizerSecretKey]:
    """Open a secret key file: return its name and key.

    Damage and format errors are :class:`errors.KeyFileError` naming what is wrong, a
    file below the cost floor is :class:`errors.WeakKeyFile`, and a wrong passphrase (or
    any edit to the file) is :class:`errors.WrongPassphrase`.
    """
    # Tolerate a BOM and CRLF line ends, which editors and USB sticks from other
    # systems add; the associated data is rebuilt from the normalized lines.
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != labels.SECRET_KEY_FILE_HEADER:
        first = lines[0].strip() if lines else ""
        if first.startswith(labels.PUBLIC_KEY_PREFIX) or first.startswith("# anonsign organizer"):
            raise errors.KeyFileError(
                "This is an organizer public key (.pub) file; give the secret key file instead."
            )
        raise errors.KeyFileError(
            f"This is not an anonsign secret key file "
            f"(its first line should be {labels.SECRET_KEY_FILE_HEADER})."
        )
    values: dict[str, str] = {}
    for index, field in enumerate(_FIELDS, start=1):
        if index >= len(lines):
            raise errors.KeyFileError(f"This key file is cut short: its {field} line is missing.")
        prefix = f"{field}: "
        if not lines[index].startswith(prefix):
            raise errors.KeyFileError(
                f"This key file is damaged: line {index + 1} should be its {field} line."
            )
        values[field] = lines[index].removeprefix(prefix)
    if len(lines) > len(_FIELDS) + 1:
        raise errors.KeyFileError("This key file has extra lines after its secret line.")

    name = values["name"]
    try:
        validate_key_name(name)
    except errors.InvalidKeyName:
        raise errors.KeyFileError("This key file's name line is damaged.") from None
    params = _parse_kdf(values["kdf"])
    salt = _b64_field(values["salt"], "salt", SALT_SIZE)
    try:
        public = OrganizerPublicKey.from_text(values["public"])
    except errors.KeyFileError:
        raise errors.KeyFileError("This key file's public line is damaged.") from None
    sealed = _b64_field(values["secret"], "secret", SECRET_FIELD_SIZE)

    if not passphrase:
        # anonsign never writes a file under an empty passphrase, so it cannot be right;
        # saying so at once spares a quarter-gigabyte key derivation.
        raise errors.WrongPassphrase()
    nonce, ciphertext = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
    try:
        plain = ChaCha20Poly1305(_derive(passphrase, salt, params)).decrypt(
            nonce, ciphertext, _aad(lines[: len(_FIELDS)])
        )
    except InvalidTag:
        raise errors.WrongPassphrase() from None
    try:
        key = OrganizerSecretKey.from_private_bytes(plain)
    except ValueError:
        raise errors.KeyFileError("This key file's secret key is damaged.") from None
    if key.public_key() != public:
        raise errors.KeyFileError(
            "This key file's public line does not match its secret key; the file is damaged."
        )
    return name, key


def load_secret_key(path: Path, passphrase: str) -> tuple[str, OrganizerSecretKey]:
    """Read and open a secret key file; every failure is one line naming ``path``."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise errors.KeyFileError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise errors.KeyFileError(f"{path} is a folder, not a secret key file.") from None
    except OSError as exc:
        raise errors.KeyFileError(f"{path} cannot be read ({exc.strerror}).") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise errors.KeyFileError(f"{path} is far too large to be a secret key file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.KeyFileError(f"{path} is not a text file, so not a secret key file.") from None
    try:
        return decrypt_secret_key(text, passphrase)
    except errors.AnonsignError as exc:
        raise type(exc)(f"{path}: {exc}") from None
