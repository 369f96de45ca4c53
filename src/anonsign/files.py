"""Writing files that must never be half-written or readable by others."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from anonsign.errors import AnonsignError


class FileExistsRefused(AnonsignError):
    """The file already exists; anonsign does not overwrite it."""


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically.

    Without ``overwrite``, an existing file is never replaced (two concurrent writers
    cannot both win: ``link`` fails when the target exists).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsRefused(
                    f"{path} already exists; anonsign does not overwrite it."
                ) from None
    finally:
        tmp.unlink(missing_ok=True)
