"""Asking before something that cannot be undone (closing petitions, for good).

click's own ``confirm(abort=True)`` ends in a bare "Aborted!" both when the person says
no and when nobody can answer (a script, a cron job, ``ssh host anonsign ...`` without
a terminal). Here each case is one ``ERROR:`` line that says what happened, and the
second names ``--yes``, the way to confirm in advance.
"""

from __future__ import annotations

import sys

import click

from anonsign.errors import AnonsignError


class NotConfirmed(AnonsignError):
    """You did not confirm; nothing was done."""


class NoAnswer(AnonsignError):
    """This needs a confirmation and nobody answered; nothing was done. Add --yes to
    confirm in advance."""


def confirm_or_stop(question: str, *, declined: str) -> None:
    """Ask ``question`` (default: no); return only on yes.

    An answer of no raises :class:`NotConfirmed` with ``declined``; no answer at all (end
    of input, as without a terminal) raises :class:`NoAnswer`.
    """
    try:
        answer = click.confirm(question, default=False)
    except click.Abort:  # end of input, or Ctrl-C at the question
        click.echo(err=True)
        where = "" if sys.stdin.isatty() else " (there is no terminal to ask)"
        raise NoAnswer(
            f"This needs a confirmation and got no answer{where}; nothing was done. "
            "Add --yes to confirm in advance."
        ) from None
    if not answer:
        raise NotConfirmed(declined)
