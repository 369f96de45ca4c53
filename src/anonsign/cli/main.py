"""The command group, and the one place where errors become ``ERROR: ...`` lines."""

from __future__ import annotations

import sys
from typing import Any

import click

from anonsign import __version__
from anonsign.errors import AnonsignError


class AnonsignGroup(click.Group):
    """A group that turns every AnonsignError into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AnonsignError as exc:
            click.echo(f"ERROR: {exc.message}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("\nInterrupted; nothing more was done.", err=True)
            sys.exit(130)


@click.group(cls=AnonsignGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anonsign")
def main() -> None:
    """anonsign: petitions that keep nothing identifying and prove their count.

    The server reads its settings from ANONSIGN_* environment variables; the instance
    folder (ANONSIGN_INSTANCE, default ./instance) holds its secrets and SQLite database.
    Organizer keys are made and used on an offline machine: `keygen`, `contacts decrypt`.
    """


def _register() -> None:
    from anonsign.cli import offline, server
    from anonsign.cli.audit import audit
    from anonsign.cli.calibrate import calibrate

    main.add_command(server.init)
    main.add_command(server.unlock)
    main.add_command(server.lock)
    main.add_command(server.emergency_close)
    main.add_command(server.serve)
    main.add_command(server.demo)
    main.add_command(server.petition)
    main.add_command(server.log_group)
    main.add_command(offline.keygen)
    contacts = click.Group(
        "contacts", help="Export sealed contacts (server) and open them (offline machine)."
    )
    contacts.add_command(server.export_contacts)
    contacts.add_command(offline.decrypt_contacts)
    main.add_command(contacts)
    main.add_command(audit)
    main.add_command(calibrate)


_register()
