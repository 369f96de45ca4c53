"""Keeping DEV instances (the demo's, ``init --dev``) away from real petitions.

A DEV instance keeps its master key in clear in the instance folder, so whoever copies
that folder can unwrap every open petition's pepper and test, one identifier at a time,
who signed (SECURITY.md, "pepper lifecycle"). That is fine for trying anonsign and fatal
for a real petition, and nothing on the page tells the two apart. So ``init`` and
``petition create`` refuse a DEV instance unless ``--dev`` says, on that very command,
that this is for trying only; and whenever one is used, the warning is loud.
"""

from __future__ import annotations

import click

from anonsign.config import Settings
from anonsign.errors import AnonsignError


class DevInstanceRefused(AnonsignError):
    """This is a DEV instance (its master key is in clear on disk); add --dev to use it
    for trying only, or make a real instance with `anonsign init` in another folder."""


def is_dev_instance(settings: Settings) -> bool:
    """True when the instance folder holds a master key in clear (``DEV-ONLY-master.key``)."""
    return settings.dev_master_key_file.exists()


def _why(settings: Settings) -> str:
    return (
        f"{settings.instance_path} is a DEV instance (the demo's, or made with `init --dev`): "
        f"its master key is in clear in {settings.dev_master_key_file.name}, so whoever "
        "copies the folder can test who signed its petitions"
    )


def refuse_dev_instance(settings: Settings, *, doing: str) -> None:
    """Raise :class:`DevInstanceRefused` on a DEV instance; ``doing`` names the refused act."""
    if not is_dev_instance(settings):
        return
    raise DevInstanceRefused(
        f"{doing}: {_why(settings)}. For real petitions, set ANONSIGN_INSTANCE to a new "
        "folder (or move this one away) and run `anonsign init` there; to go on with this "
        "one for trying only, add --dev."
    )


def warn_dev_instance(settings: Settings) -> None:
    """Say loudly, on standard error, that what was just done is for trying only."""
    click.echo(
        f"WARNING: {_why(settings)}. For trying anonsign only; never for real signatures.",
        err=True,
    )
