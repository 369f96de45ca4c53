"""The instance folder: the server's secrets and, by default, its SQLite database.

The folder is created 0700 and each secret file 0600, written atomically, so a
half-written key never exists. The session key signs the CSRF cookie; the log key signs
checkpoints; the **server keys** (the master key, which wraps every open petition's
pepper, and the store key, which encrypts the database) never rest in clear on
persistent disk (SECURITY.md, "pepper lifecycle"): the disk holds them sealed under the
operator's unlock passphrase, and ``unlock`` puts them in memory-backed storage (tmpfs)
after each boot. Only the demo and the tests keep a clear ``DEV-ONLY`` copy in the
folder. ``init`` is idempotent: running it again keeps existing secrets (replacing the
master key would make every open petition's pepper unreadable).

Closing a petition replaces the master key (:func:`stage_rotation`, then
:func:`finish_rotation`): the new keys are first written beside the current ones as
``*.next``, the database is rewrapped under them in one transaction, then the ``.next``
files replace the current ones. A crash between those steps leaves both, and
``Service.open`` keeps whichever the database agrees with, so no crash can leave open
petitions with peppers nobody can unwrap.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from anonsign.config import Settings
from anonsign.crypto.lock import open_server_keys, seal_server_keys
from anonsign.crypto.master import SERVER_KEYS_SIZE, ServerKeys
from anonsign.crypto.notes import LogSigner
from anonsign.errors import AnonsignError, ConfigError, NotInitialized
from anonsign.files import write_private_file

SESSION_KEY_SIZE = 32
LOG_KEY_HEADER = "anonsign-log-key-v1"


def _read_secret(path: Path, sizes: tuple[int, ...], what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotInitialized(
            f"The {what} ({path}) is missing; run `anonsign init` for this instance."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the {what} ({path}): {exc.strerror}.") from None
    if len(data) not in sizes:
        raise ConfigError(f"The {what} ({path}) is damaged: expected {sizes[0]} bytes.")
    return data


def next_path(path: Path) -> Path:
    """Where a rotation stages the new version of a key file."""
    return path.with_name(path.name + ".next")


def _key_bytes(keys: ServerKeys) -> bytes:
    # A v1 instance (no store key yet) keeps its 32-byte form until `init` converts it.
    return keys.master if keys.store is None else keys.to_bytes()


class InstanceLocked(NotInitialized):
    """The instance is locked: run `anonsign unlock` (needed once after every reboot)."""


class UnlockRefused(AnonsignError):
    """The master key may only be unlocked to memory-backed storage (tmpfs)."""


def has_master_key(settings: Settings) -> bool:
    return settings.sealed_master_key_file.exists() or settings.dev_master_key_file.exists()


def needs_passphrase(settings: Settings) -> bool:
    """Whether ``init`` must seal something: a new instance, or a v1 one to convert."""
    if uses_dev_master_key(settings):
        return False
    if not has_master_key(settings):
        return True
    try:
        return load_server_keys(settings).store is None
    except NotInitialized:
        return True


def init_instance(
    settings: Settings, *, dev: bool = False, passphrase: str | None = None
) -> list[str]:
    """Create what is missing (folder, secrets); return a line per thing created.

    New server keys are sealed under ``passphrase`` and unlocked at once; with ``dev``
    they are kept in clear in the instance folder instead (demo and tests only). An
    instance from before the store was encrypted (a master key without a store key)
    gets its store key here; the caller then encrypts the database with it.
    """
    created: list[str] = []
    folder = settings.instance_path
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        created.append(f"instance folder {folder}")
    if not has_master_key(settings):
        keys = ServerKeys.generate()
        if dev:
            write_private_file(settings.dev_master_key_file, keys.to_bytes())
            created.append(
                f"DEV-ONLY server keys in clear {settings.dev_master_key_file} "
                "(never use this instance for a real petition)"
            )
        else:
            _seal_and_unlock(settings, keys, passphrase)
            created.append(f"sealed server keys {settings.sealed_master_key_file}")
            created.append(f"unlocked server keys {settings.unlocked_master_key_file}")
    else:
        keys = load_server_keys(settings)
        if keys.store is None:
            keys = keys.with_store_key()
            if uses_dev_master_key(settings):
                write_private_file(settings.dev_master_key_file, keys.to_bytes(), overwrite=True)
            else:
                _check_passphrase(settings, keys, passphrase)
                _seal_and_unlock(settings, keys, passphrase, overwrite=True)
            created.append("store key (the database is encrypted with it from now on)")
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


def _seal_and_unlock(
    settings: Settings, keys: ServerKeys, passphrase: str | None, *, overwrite: bool = False
) -> None:
    if not passphrase:
        raise NotInitialized("A new instance needs an unlock passphrase to seal its keys.")
    sealed = seal_server_keys(keys, passphrase)
    write_private_file(settings.sealed_master_key_file, sealed.encode("ascii"), overwrite=overwrite)
    write_unlocked(settings, keys)


def _check_passphrase(settings: Settings, keys: ServerKeys, passphrase: str | None) -> None:
    """Refuse to reseal under a passphrase that does not open the current sealed keys."""
    if not passphrase:
        raise NotInitialized("Sealing the server keys again needs the unlock passphrase.")
    sealed = _read_sealed(settings)
    if open_server_keys(sealed, passphrase).master != keys.master:
        raise ConfigError(
            "The unlocked master key is not the sealed one: run `anonsign lock`, then "
            "`anonsign unlock`, and try again."
        )


def _read_sealed(settings: Settings) -> str:
    try:
        return settings.sealed_master_key_file.read_text(encoding="ascii")
    except FileNotFoundError:
        raise NotInitialized(
            f"No sealed server keys in {settings.instance_path}; run `anonsign init` first."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the sealed server keys: {exc}.") from None


def _current_key_file(settings: Settings) -> Path:
    if uses_dev_master_key(settings):
        return settings.dev_master_key_file
    return settings.unlocked_master_key_file


def load_server_keys(settings: Settings, *, staged: bool = False) -> ServerKeys:
    """The server keys: explicit file, else the DEV-ONLY copy, else the unlocked one.

    With ``staged``, the keys a rotation has staged (``*.next``) instead.
    """
    path = _current_key_file(settings)
    if staged:
        path = next_path(path)
    elif not path.exists():
        if settings.sealed_master_key_file.exists():
            raise InstanceLocked(
                f"The instance is locked (no unlocked server keys at {path}): run "
                "`anonsign unlock` with the unlock passphrase; it is needed after every reboot."
            )
        raise NotInitialized(
            f"This instance has no server keys ({settings.instance_path}); "
            "run `anonsign init` first."
        )
    data = _read_secret(path, (SERVER_KEYS_SIZE, SERVER_KEYS_SIZE // 2), "unlocked server keys")
    return ServerKeys.from_bytes(data)


def rotation_pending(settings: Settings) -> bool:
    return next_path(_current_key_file(settings)).exists()


def stage_rotation(settings: Settings, passphrase: str | None) -> ServerKeys:
    """Write new server keys (a new master key) beside the current ones; return them.

    A production instance reseals under the unlock passphrase, checked against the
    current sealed keys first; a DEV instance needs none.
    """
    keys = load_server_keys(settings)
    if keys.store is None:
        raise NotInitialized("This instance has no store key yet; run `anonsign init` first.")
    new = keys.rotated()
    current = _current_key_file(settings)
    if not uses_dev_master_key(settings):
        _check_passphrase(settings, keys, passphrase)
        assert passphrase is not None  # checked just above
        sealed = seal_server_keys(new, passphrase)
        write_private_file(
            next_path(settings.sealed_master_key_file), sealed.encode("ascii"), overwrite=True
        )
    write_private_file(next_path(current), new.to_bytes(), overwrite=True)
    return new


def finish_rotation(settings: Settings) -> None:
    """Make the staged keys the current ones (after the database was rewrapped)."""
    current = _current_key_file(settings)
    sealed_next = next_path(settings.sealed_master_key_file)
    if sealed_next.exists() and not uses_dev_master_key(settings):
        os.replace(sealed_next, settings.sealed_master_key_file)
    if next_path(current).exists():
        # The old file's blocks: overwritten first, where the file system allows it.
        _overwrite(current)
        os.replace(next_path(current), current)


def abandon_rotation(settings: Settings) -> None:
    """Forget staged keys the database never used (a rotation that failed before commit)."""
    for path in (
        next_path(_current_key_file(settings)),
        next_path(settings.sealed_master_key_file),
    ):
        if path.exists():
            _overwrite(path)
            path.unlink()


def _overwrite(path: Path) -> None:
    if not path.exists():
        return
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.write(bytes(size))
        handle.flush()
        os.fsync(handle.fileno())


def uses_dev_master_key(settings: Settings) -> bool:
    return settings.master_key_file is None and settings.dev_master_key_file.exists()


def filesystem_type(path: Path) -> str:
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


def write_unlocked(settings: Settings, keys: ServerKeys, *, allow_disk: bool = False) -> Path:
    """Put the server keys where the service reads them; refuse persistent storage."""
    path = settings.unlocked_master_key_file
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind = filesystem_type(path.parent)
    if kind not in MEMORY_FILESYSTEMS and not allow_disk:
        raise UnlockRefused(
            f"{path.parent} is on {kind}, not memory-backed storage: the master key would "
            "outlive a power-off there. Set ANONSIGN_MASTER_KEY_FILE to a path on tmpfs "
            "(such as /run/anonsign-unlock/master.key)."
        )
    write_private_file(path, _key_bytes(keys), overwrite=True)
    return path


def unlock(settings: Settings, passphrase: str, *, allow_disk: bool = False) -> Path:
    """Open the sealed server keys and put them in memory-backed storage; return where."""
    if not settings.sealed_master_key_file.exists() and settings.dev_master_key_file.exists():
        raise AnonsignError(
            "This is a DEV instance: its keys are in clear on disk; nothing to unlock."
        )
    keys = open_server_keys(_read_sealed(settings), passphrase)
    path = write_unlocked(settings, keys, allow_disk=allow_disk)
    staged = next_path(settings.sealed_master_key_file)
    if staged.exists():
        # A close was interrupted after staging new keys: unlock them too, and let the
        # next close (under the database lock) keep whichever the database uses.
        text = staged.read_text(encoding="ascii")
        write_private_file(
            next_path(path), _key_bytes(open_server_keys(text, passphrase)), overwrite=True
        )
    return path


def forget_unlocked_key(settings: Settings) -> Path | None:
    """Overwrite and delete the unlocked server keys (``lock``, ``emergency-close``)."""
    path = _current_key_file(settings)
    if next_path(path).exists():
        _overwrite(next_path(path))
        next_path(path).unlink()
    if not path.exists():
        return None
    _overwrite(path)
    path.unlink()
    return path


def load_session_key(settings: Settings) -> bytes:
    return _read_secret(settings.session_key_file, (SESSION_KEY_SIZE,), "session key")
