"""The command group, and the one place where errors become ``ERROR: ...`` lines.

Three kinds of failure reach a person here, and each leaves as one line and a non-zero
exit: an :class:`AnonsignError` (exit 1), a usage mistake that click finds (a missing
option, an unknown one, a bad value; exit 2, click's convention), and a question that
got no answer (exit 1). Someone at an SSH prompt over Tor reads one sentence that says
what to do, not click's three lines of usage.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from anonsign import __version__
from anonsign.errors import AnonsignError

#: click's exit status for a usage mistake; kept, so scripts can tell it from a failure.
USAGE_EXIT = 2


def _command_path(ctx: click.Context | None) -> str:
    """``anonsign petition create``, whatever name the program was started under."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["anonsign", *reversed(names)])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def usage_error_line(exc: click.UsageError) -> str:
    """One line for a usage mistake, naming the help of the command it was made in."""
    message = _one_line(exc.format_message())
    if not message.endswith((".", "?", "!")):
        message += "."
    return f"ERROR: {message} See `{_command_path(exc.ctx)} --help`."


def database_error_line(exc: BaseException) -> str | None:
    """One line for a failure of the database itself (down, unknown, a lost race).

    None for anything else, which stays a traceback: a bug should be seen whole. The
    driver's first line names the server and the reason, never the URL's password.
    """
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None or not isinstance(exc, errors.DBAPIError):
        return None  # SQLAlchemy not loaded: the exception cannot be one of its
    reason = _one_line(str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__)
    if isinstance(exc, errors.IntegrityError):
        return (
            "ERROR: Another process changed the same rows at the same moment, and the "
            f"database kept its change ({reason}); nothing of this command was kept. "
            "Run it again."
        )
    if isinstance(exc, errors.OperationalError):
        return (
            f"ERROR: Cannot use the database (ANONSIGN_DATABASE_URL): {reason}. "
            "Nothing was changed."
        )
    return f"ERROR: The database refused the command: {reason}. Nothing was changed."


class AnonsignGroup(click.Group):
    """A group that turns every error a person can cause into one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AnonsignError as exc:
            click.echo(f"ERROR: {exc.message}", err=True)
            sys.exit(1)
        except Exception as exc:
            line = database_error_line(exc)
            if line is None:
                raise
            click.echo(line, err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("\nInterrupted; nothing more was done.", err=True)
            sys.exit(130)

    def main(self, args: Sequence[str] | None = None, *rest: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().main(args, *rest, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(args, *rest, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # `anonsign` alone, or a group without its command: the help
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            click.echo(usage_error_line(exc), err=True)
            sys.exit(USAGE_EXIT)
        except click.ClickException as exc:
            click.echo(f"ERROR: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("ERROR: Stopped before anything was done.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


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
    from anonsign.cli.certificate import certificate
    from anonsign.cli.stats import stats
    from anonsign.cli.witness import witness

    main.add_command(server.init)
    main.add_command(server.unlock)
    main.add_command(server.lock)
    main.add_command(server.emergency_close)
    main.add_command(server.serve)
    main.add_command(server.demo)
    server.petition.add_command(certificate)
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
    main.add_command(stats)
    main.add_command(witness)


_register()
