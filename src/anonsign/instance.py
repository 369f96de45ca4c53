"""The instance folder: the server's secrets and, by default, its SQLite database.

The folder is created 0700 and each secret file 0600, written atomically, so a
half-written key never exists. The master key wraps every petition's pepper; the
session key signs the CSRF cookie. Neither is ever printed or logged. ``init`` is
idempotent: running it again keeps existing secrets (replacing the master key would
make every open petition's pepper unreadable).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

from anonsign.config import Settings
from anonsign.crypto.master import MASTER_KEY_SIZE, new_master_key
from anonsign.crypto.notes import LogSigner
from anonsign.errors import ConfigError, NotInitialized
from anonsign.files import write_private_file

SESSION_KEY_SIZE = 32
LOG_KEY_HEADER = "anonsign-log-key-v1"


def _read_secret(path: Path, size: int, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotInitialized(
            f"The {what} ({path}) is missing; run `anonsign init` for this instance."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the {what} ({path}): {exc.strerror}.") from None
    if len(data) != size:
        raise ConfigError(f"The {what} ({path}) is damaged: expected {size} bytes.")
    return data


def init_instance(settings: Settings) -> list[str]:
    """Create what is missing (folder, secrets); return a line per thing created."""
    created: list[str] = []
    folder = settings.instance_path
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        created.append(f"instance folder {folder}")
    if not settings.master_key_file.exists():
        write_private_file(settings.master_key_file, new_master_key())
        created.append(f"master key {settings.master_key_file}")
    if not settings.session_key_file.exists():
        write_private_file(settings.session_key_file, secrets.token_bytes(SESSION_KEY_SIZE))
        created.append(f"session key {settings.session_key_file}")
    if not settings.log_key_file.exists():
        signer = LogSigner.generate(settings.log_name)
        write_private_file(settings.log_key_file, _log_key_text(signer).encode("ascii"))
        created.append(f"log signing key {settings.log_key_file} (log name {settings.log_name!r})")
    return created


def _log_key_text(signer: LogSigner) -> str:
    raw = base64.b64encode(signer.to_private_bytes()).decode("ascii")
    return f"{LOG_KEY_HEADER}\nname: {signer.name}\nkey: {raw}\n"


def load_log_signer(settings: Settings) -> LogSigner:
    """The instance's Ed25519 log key, which signs every checkpoint."""
    path = settings.log_key_file
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except FileNotFoundError:
        raise NotInitialized(
            f"The log signing key ({path}) is missing; run `anonsign init` for this instance."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the log signing key ({path}): {exc}.") from None
    try:
        header, name_line, key_line = lines
        if header != LOG_KEY_HEADER or not name_line.startswith("name: "):
            raise ValueError
        raw = base64.b64decode(key_line.removeprefix("key: "), validate=True)
        return LogSigner.from_private_bytes(name_line.removeprefix("name: "), raw)
    except (ValueError, binascii.Error):
        raise ConfigError(f"The log signing key ({path}) is damaged.") from None


def load_master_key(settings: Settings) -> bytes:
    return _read_secret(settings.master_key_file, MASTER_KEY_SIZE, "master key")


def load_session_key(settings: Settings) -> bytes:
    return _read_secret(settings.session_key_file, SESSION_KEY_SIZE, "session key")
