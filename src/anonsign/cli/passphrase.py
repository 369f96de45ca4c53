"""Where a passphrase comes from: a file, ANONSIGN_PASSPHRASE, or a prompt.

Never a command-line argument: those are visible to every user in ``ps``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from anonsign.errors import AnonsignError

ENV_VAR = "ANONSIGN_PASSPHRASE"
MIN_NEW_PASSPHRASE_CHARS = 12


class PassphraseError(AnonsignError):
    """No passphrase was given; use --passphrase-file, ANONSIGN_PASSPHRASE, or a terminal."""


def read_passphrase(passphrase_file: Path | None, *, new: bool) -> str:
    if passphrase_file is not None:
        try:
            lines = passphrase_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PassphraseError(
                f"Cannot read the passphrase file {passphrase_file}: {exc}."
            ) from None
        passphrase = lines[0] if lines else ""
    elif os.environ.get(ENV_VAR):
        passphrase = os.environ[ENV_VAR]
    elif sys.stdin.isatty():
        passphrase = click.prompt(
            "New passphrase for the key" if new else "Passphrase",
            hide_input=True,
            confirmation_prompt=new,
        )
    else:
        raise PassphraseError()
    if new and len(passphrase) < MIN_NEW_PASSPHRASE_CHARS:
        raise PassphraseError(
            f"The passphrase is too short: use at least {MIN_NEW_PASSPHRASE_CHARS} characters "
            "(several random words are best)."
        )
    if not passphrase:
        raise PassphraseError("The passphrase is empty.")
    return passphrase
