"""Choosing the name of the server's public log, once, at ``init``.

The log name is the name of the key that signs every checkpoint and the first part of
every petition's log origin (``<name>/<petition>``). Auditors read it in every report
("signed by ..."), and it can never change: every checkpoint they hold is signed under
it. Left at the default, it is ``anonsign``, which names no server; so ``init`` takes it
from ``--log-name``, else ``ANONSIGN_LOG_NAME``, else the onion address
(``ANONSIGN_ONION_ADDRESS``), and on a terminal asks, proposing that address.
"""

from __future__ import annotations

import sys

import click

from anonsign.config import DEFAULT_LOG_NAME, Settings
from anonsign.crypto.notes import validate_key_name
from anonsign.errors import AnonsignError
from anonsign.onion import is_v3_onion_address


class LogNameError(AnonsignError):
    """This log name cannot be used; give an onion address such as the one in tor's
    hostname file."""


def _interactive() -> bool:
    return sys.stdin.isatty()


def validate_log_name(name: str) -> str:
    """The name, checked: a signed-note key name, and a real v3 address if it looks like one."""
    name = validate_key_name(name.strip())
    if name.endswith(".onion") and not is_v3_onion_address(name):
        raise LogNameError(
            f"{name!r} is not a valid v3 onion address (56 letters and digits 2-7, then "
            ".onion, with a matching checksum): a log named after a mistyped address names "
            "no server. Copy it from the hostname file of tor."
        )
    return name


def choose_log_name(settings: Settings, given: str | None) -> tuple[str, str]:
    """The name for a new log, and where it came from (for the line ``init`` prints)."""
    if given is not None:
        return validate_log_name(given), "--log-name"
    if settings.log_name != DEFAULT_LOG_NAME:
        return validate_log_name(settings.log_name), "ANONSIGN_LOG_NAME"
    proposed = settings.onion_address or DEFAULT_LOG_NAME
    source = "ANONSIGN_ONION_ADDRESS" if settings.onion_address else "the default"
    if not _interactive():
        return proposed, source
    click.echo(
        "Name this server's public log. Auditors read it in every check ('signed by "
        "NAME'), and it cannot change later: use the onion address of this server."
    )
    answer = click.prompt("Log name", default=proposed)
    return validate_log_name(answer), "your answer"


def describe_log_name(name: str, source: str) -> list[str]:
    """What ``init`` says about a log it has just named."""
    lines = [
        f"The public log is named {name!r} (from {source}): every checkpoint is signed by "
        f"{name!r}, each petition's log is '{name}/<petition>', and auditors see that name "
        "in `anonsign audit verify`. It cannot be changed; `anonsign log key` prints the "
        "key they check it with."
    ]
    if name == DEFAULT_LOG_NAME:
        lines.append(
            f"Note: {name!r} names no server. To name the log after your onion address, "
            "start again on a new instance with --log-name ADDRESS.onion (or "
            "ANONSIGN_ONION_ADDRESS set)."
        )
    return lines
