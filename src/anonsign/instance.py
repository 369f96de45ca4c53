"""The instance folder: the server's secrets and, by default, its SQLite database.

The folder is created 0700 and each secret file 0600, written atomically, so a
half-written key never exists. The session key signs the CSRF cookie; the log key signs
checkpoints; the **master key** wraps every open petition's pepper, so it never rests in
clear on persistent disk (SECURITY.md, "pepper lifecycle"): the disk holds it sealed
under the operator's unlock passphrase, and ``unlock`` puts it in memory-backed storage
(tmpfs) after each boot. Only the demo and the tests keep a clear ``DEV-ONLY`` copy in
the folder. ``init`` is idempotent: running it again keeps existing secrets (replacing
the master key would make every open petition's pepper unreadable).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from anonsign.config import Settings
from anonsign.crypto.lock import open_master_key, seal_master_key
from anonsign.crypto.master import MASTER_KEY_SIZE, new_master_key
from anonsign.crypto.notes import LogSigner
from anonsign.errors import AnonsignError, ConfigError, NotInitialized
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


class InstanceLocked(NotInitialized):
    """The instance is locked: run `anonsign unlock` (needed once after every reboot)."""


class UnlockRefused(AnonsignError):
    """The master key may only be unlocked to memory-backed storage (tmpfs)."""


def has_master_key(settings: Settings) -> bool:
    return settings.sealed_master_key_file.exists() or settings.dev_master_key_file.exists()


def init_instance(
    settings: Settings, *, dev: bool = False, passphrase: str | None = None
) -> list[str]:
    """Create what is missing (folder, secrets); return a line per thing created.

    A new master key is sealed under ``passphrase`` and unlocked at once; with ``dev``
    it is kept in clear in the instance folder instead (demo and tests only).
    """
    created: list[str] = []
    folder = settings.instance_path
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        created.append(f"instance folder {folder}")
    if not has_master_key(settings):
        master_key = new_master_key()
        if dev:
            write_private_file(settings.dev_master_key_file, master_key)
            created.append(
                f"DEV-ONLY master key in clear {settings.dev_master_key_file} "
                "(never use this instance for a real petition)"
            )
        else:
            if not passphrase:
                raise NotInitialized(
                    "A new instance needs an unlock passphrase to seal its master key."
                )
            sealed = seal_master_key(master_key, passphrase)
            write_private_file(settings.sealed_master_key_file, sealed.encode("ascii"))
            created.append(f"sealed master key {settings.sealed_master_key_file}")
            created.append(f"unlocked master key {write_unlocked(settings, master_key)}")
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
    """The master key: explicit file, else the DEV-ONLY copy, else the unlocked one."""
    if settings.master_key_file is None and settings.dev_master_key_file.exists():
        return _read_secret(settings.dev_master_key_file, MASTER_KEY_SIZE, "dev master key")
    path = settings.unlocked_master_key_file
    if not path.exists():
        if settings.sealed_master_key_file.exists():
            raise InstanceLocked(
                f"The instance is locked (no unlocked master key at {path}): run "
                "`anonsign unlock` with the unlock passphrase; it is needed after every reboot."
            )
        raise NotInitialized(
            f"This instance has no master key ({settings.instance_path}); "
            "run `anonsign init` first."
        )
    return _read_secret(path, MASTER_KEY_SIZE, "unlocked master key")


def uses_dev_master_key(settings: Settings) -> bool:
    return settings.master_key_file is None and settings.dev_master_key_file.exists()


def _filesystem_type(path: Path) -> str:
    """The type of the file system holding ``path`` (longest matching mount point)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3:
            mount = fields[1].replace("\\040", " ")
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


MEMORY_FILESYSTEMS = {"tmpfs", "ramfs"}


def write_unlocked(settings: Settings, master_key: bytes, *, allow_disk: bool = False) -> Path:
    """Put the master key where the service reads it; refuse persistent storage."""
    path = settings.unlocked_master_key_file
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind = _filesystem_type(path.parent)
    if kind not in MEMORY_FILESYSTEMS and not allow_disk:
        raise UnlockRefused(
            f"{path.parent} is on {kind}, not memory-backed storage: the master key would "
            "outlive a power-off there. Set ANONSIGN_MASTER_KEY_FILE to a path on tmpfs "
            "(such as /run/anonsign-unlock/master.key)."
        )
    write_private_file(path, master_key, overwrite=True)
    return path


def unlock(settings: Settings, passphrase: str, *, allow_disk: bool = False) -> Path:
    """Open the sealed master key and put it in memory-backed storage; return where."""
    try:
        text = settings.sealed_master_key_file.read_text(encoding="ascii")
    except FileNotFoundError:
        if settings.dev_master_key_file.exists():
            raise AnonsignError(
                "This is a DEV instance: its master key is in clear on disk; nothing to unlock."
            ) from None
        raise NotInitialized(
            f"No sealed master key in {settings.instance_path}; run `anonsign init` first."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the sealed master key: {exc}.") from None
    return write_unlocked(settings, open_master_key(text, passphrase), allow_disk=allow_disk)


def forget_unlocked_key(settings: Settings) -> Path | None:
    """Overwrite and delete the unlocked master key (``lock``, ``emergency-close``)."""
    path = settings.unlocked_master_key_file
    if settings.master_key_file is None and settings.dev_master_key_file.exists():
        path = settings.dev_master_key_file
    if not path.exists():
        return None
    with path.open("r+b") as handle:
        handle.write(bytes(MASTER_KEY_SIZE))
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()
    return path


def load_session_key(settings: Settings) -> bytes:
    return _read_secret(settings.session_key_file, SESSION_KEY_SIZE, "session key")
