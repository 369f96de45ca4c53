"""Commands for the server: set up, run, manage petitions, export sealed contacts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from anonsign.config import Settings, load_settings
from anonsign.errors import AnonsignError

if TYPE_CHECKING:
    from anonsign.domain.identifiers import IdentifierKind
    from anonsign.service import Service


def _settings() -> Settings:
    return load_settings()


PASSPHRASE_FILE = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the unlock passphrase from the first line of this file "
    "(otherwise ANONSIGN_PASSPHRASE, otherwise a prompt).",
)


@click.command()
@click.option(
    "--dev",
    is_flag=True,
    help="A DEV instance, for trying anonsign only: its master key stays in clear in the "
    "instance folder, so whoever copies the folder can test identifiers against its "
    "petitions. Also needed to run init again on one (the demo's, for instance).",
)
@click.option(
    "--log-name",
    metavar="NAME",
    help="The name of this server's public log: its onion address (ADDRESS.onion). Every "
    "checkpoint is signed under it and auditors read it; it cannot change after the first "
    "init. Default: ANONSIGN_LOG_NAME, else ANONSIGN_ONION_ADDRESS; asked on a terminal.",
)
@PASSPHRASE_FILE
def init(dev: bool, log_name: str | None, passphrase_file: Path | None) -> None:
    """Create the instance folder, its secrets and the database schema (idempotent).

    A new instance's keys (the master key, which protects every petition's secret, and
    the store key, which encrypts the database) are sealed under an unlock passphrase
    that you choose now; after every reboot, `anonsign unlock` puts them back in memory.
    Its public log gets its name now, for good (--log-name). Safe to run again: existing
    secrets are kept and the schema is brought up to date. An instance whose database is
    not encrypted yet is converted (stop the server first). A DEV instance (`make run`'s)
    is refused without --dev: a real one must be made in another folder.
    """
    from anonsign.cli.dev import is_dev_instance, refuse_dev_instance, warn_dev_instance
    from anonsign.cli.log_name import choose_log_name, describe_log_name
    from anonsign.cli.passphrase import read_passphrase
    from anonsign.instance import has_master_key, init_instance, load_log_signer, load_server_keys
    from anonsign.instance import needs_passphrase as must_seal
    from anonsign.storage.db import Database, sqlite_path
    from anonsign.storage.encrypt import StoreState, encrypt_in_place, store_state
    from anonsign.storage.migrate import upgrade

    settings = _settings()
    if not dev:
        refuse_dev_instance(settings, doing="Not initialized")
    named = None
    if settings.log_key_file.exists():
        current = load_log_signer(settings).name
        if log_name is not None and log_name.strip() != current:
            raise LogNameFixed(
                f"This instance's log is named {current!r} for good (every checkpoint is "
                f"signed under that name), so it cannot become {log_name.strip()!r}; for "
                "another name, make a new instance."
            )
    else:
        named = choose_log_name(settings, log_name)
        settings = settings.with_overrides(log_name=named[0])
    passphrase = None
    if not dev and must_seal(settings):
        if has_master_key(settings):
            click.echo("The database will be encrypted: give the unlock passphrase.")
            passphrase = read_passphrase(passphrase_file, new=False)
        else:
            click.echo("Choose the unlock passphrase that protects this server's keys.")
            passphrase = read_passphrase(passphrase_file, new=True)
    created = init_instance(settings, dev=dev, passphrase=passphrase)
    keys = load_server_keys(settings)
    path = sqlite_path(settings.database_url)
    if path is not None and store_state(path) is StoreState.PLAIN:
        assert keys.store is not None  # init_instance made one
        encrypt_in_place(path, keys.store)
        created.append(f"encrypted database {path} (the plain file was overwritten)")
    db = Database(settings.database_url, keys.store)
    try:
        upgrade(db.engine)
    finally:
        db.dispose()
    for line in created:
        click.echo(f"created {line}")
    if named is not None:
        for line in describe_log_name(*named):
            click.echo(line)
    click.echo(f"Instance ready at {settings.instance_path} (database schema up to date).")
    if is_dev_instance(settings):
        warn_dev_instance(settings)


class LogNameFixed(AnonsignError):
    """This instance's log already has its name; a log's name cannot change."""


@click.command()
@PASSPHRASE_FILE
@click.option(
    "--allow-disk",
    is_flag=True,
    help="Allow writing the unlocked key to persistent storage (not recommended).",
)
def unlock(passphrase_file: Path | None, allow_disk: bool) -> None:
    """Open the sealed master key with the unlock passphrase, into memory (after a reboot).

    The key is written to ANONSIGN_MASTER_KEY_FILE, or to a file under your runtime
    directory; either must be memory-backed (tmpfs), so a powered-off server holds the
    master key only in its sealed form.
    """
    from anonsign.cli.passphrase import read_passphrase
    from anonsign.instance import unlock as unlock_instance

    settings = _settings()
    path = unlock_instance(
        settings, read_passphrase(passphrase_file, new=False), allow_disk=allow_disk
    )
    click.echo(f"Unlocked: the server keys are in {path} until the next reboot or `anonsign lock`.")


def _stop_server(settings: Settings) -> str:
    """Stop the instance's running server, if any; say what happened, in one sentence."""
    from anonsign.server_control import find_server, stop_server

    server = find_server(settings)
    if server is None:
        return "No server was running for this instance."
    stop_server(server)
    return (
        f"Stopped the server (process {server.pid}) and its workers; it stays down until "
        "`anonsign unlock` and a new start."
    )


@click.command()
def lock() -> None:
    """Stop the server, then remove the unlocked keys from memory-backed storage.

    Until the next `anonsign unlock`, nothing can read the database or serve it. On a
    DEV instance, whose keys are in clear in its folder, it only stops the server.
    """
    from anonsign.instance import forget_unlocked_key, uses_dev_master_key

    settings = _settings()
    if uses_dev_master_key(settings):
        # Removing that file would not lock anything: it would destroy the DEV instance.
        click.echo(
            "A DEV instance has no unlocked keys to remove: its keys stay in clear in "
            f"{settings.dev_master_key_file}."
        )
    else:
        path = forget_unlocked_key(settings)  # first, as emergency-close does
        click.echo(f"Locked: removed {path}." if path else "Already locked.")
    click.echo(_stop_server(settings))


@click.command("emergency-close")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def emergency_close(yes: bool) -> None:
    """Close EVERY open petition now, destroy their peppers, stop the server and lock.

    For when the server may be seized: afterwards nobody, whoever holds the server, can
    test whether an identifier signed, and no process is left that holds a secret. Final
    checkpoints are published. Cannot be undone.
    """
    from anonsign.cli.confirm import confirm_or_stop
    from anonsign.instance import forget_unlocked_key
    from anonsign.service import Service

    settings = _settings()
    service = Service.open(settings)
    try:
        open_petitions = service.petitions(open_only=True)
        if not yes:
            confirm_or_stop(
                f"Close all {len(open_petitions)} open petitions for good, stop the server "
                "and lock the instance?",
                declined="Nothing was closed, and the server and its keys are as they were.",
            )
        for petition in open_petitions:
            # No new master key: the keys are removed below, with every process that
            # held them.
            service.close(petition.slug, rotate=False)
            click.echo(f"closed {petition.slug}")
    finally:
        service.close_connections()
    click.echo(f"Closed {len(open_petitions)} petitions; their peppers are destroyed.")
    # The keys go first: if the server does not stop, or stopping it ends this command
    # (in a container whose first process is the server), no copy is left on tmpfs.
    path = forget_unlocked_key(settings)
    if path:
        click.echo(f"Removed the unlocked keys at {path}.")
    click.echo(_stop_server(settings))


def _check_address(settings: Settings, host: str, port: int, unix_socket: Path | None) -> None:
    """Refuse a taken address in one line, before anything starts (cli.listen says why)."""
    from anonsign.cli.listen import check_socket_free, check_tcp_free
    from anonsign.server_control import find_server

    if find_server(settings) is not None:
        return  # this instance's own server: run_server says so, better than "in use"
    if unix_socket is not None:
        check_socket_free(unix_socket)
    else:
        check_tcp_free(host, port)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="TCP port to listen on (with --host).",
)
@click.option(
    "--socket",
    "unix_socket",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Listen on this unix socket instead of host:port (what the onion service uses).",
)
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default: cores).")
def serve(host: str, port: int, unix_socket: Path | None, workers: int | None) -> None:
    """Serve the petitions with gunicorn (never a development server), without access logs.

    Prints one line saying where it listens; runs until Ctrl-C, `anonsign lock` or
    `anonsign emergency-close`.
    """
    from anonsign.cli.gunicorn_app import run_server
    from anonsign.cli.listen import listening_line

    settings = _settings()
    count = workers or settings.workers
    _check_address(settings, host, port, unix_socket)
    bind = f"unix:{unix_socket}" if unix_socket else f"{host}:{port}"
    line = listening_line(url=f"http://{host}:{port}/", socket_path=unix_socket, workers=count)
    run_server(settings, bind=bind, workers=count, announce=lambda: click.echo(line))


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to serve the demo on."
)
@click.option(
    "--port",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="TCP port to serve the demo on (make run PORT=... sets it).",
)
@click.option("--no-serve", is_flag=True, help="Set up the demo and exit without serving.")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Set up a DEMO petition with a demo organizer key, then serve it.

    For trying anonsign on your own computer only: the demo organizer's secret key and
    its passphrase are kept inside the instance folder, so anyone who can read that
    folder can open the demo contacts.
    """
    from anonsign.cli.demo import DEMO_BANNER, set_up_demo
    from anonsign.cli.gunicorn_app import run_server
    from anonsign.cli.isolated import run_isolated
    from anonsign.cli.listen import STOP_HINT

    settings = _settings()
    if not no_serve:
        _check_address(settings, host, port, None)
    if not any(
        name in os.environ for name in ("ANONSIGN_PUBLISH_MIN", "ANONSIGN_PUBLISH_INTERVAL")
    ):
        # So that whoever tries the demo sees the count move: a real petition publishes
        # in batches of at least 20, at most hourly (SECURITY.md, batched publication).
        settings = settings.with_overrides(
            publish_min=1, publish_interval=30, publisher_period=10.0
        )
    # In a child: this process goes on to be the server's master, which holds no secret.
    for line in run_isolated(set_up_demo, settings):
        click.echo(line)
    click.echo(DEMO_BANNER, err=True)
    click.echo(
        f"The demo publishes the count every {settings.publish_interval} s once "
        f"{settings.publish_min} new signature(s) wait.",
        err=True,
    )
    if not no_serve:
        line = f"Serving the demo at http://{host}:{port}/p/demo. {STOP_HINT}"
        run_server(
            settings,
            bind=f"{host}:{port}",
            workers=settings.workers,
            announce=lambda: click.echo(line),
        )


# --- petitions ----------------------------------------------------------------------------


@click.group()
def petition() -> None:
    """Create, list and close petitions."""


@petition.command("create")
@click.argument("slug")
@click.option("--title", required=True, help="The petition's title (one line).")
@click.option(
    "--text-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The petition's text, in Markdown (UTF-8).",
)
@click.option(
    "--identifier",
    "identifier_kind",
    required=True,
    type=click.Choice(["email", "phone", "text"]),
    help="What signers give to be counted once: an email address, a phone number, "
    "or a text such as an ID number.",
)
@click.option(
    "--region",
    help="Needed for phone petitions: the country whose numbers signers may write "
    "without a country code, as a two-letter code (TM: then 8 65 123456 and 65123456 "
    "count as +993 65 123456); `--region none` accepts only numbers written with + "
    "and their country code.",
)
@click.option(
    "--translation",
    "translations",
    multiple=True,
    nargs=3,
    type=(str, str, click.Path(dir_okay=False, path_type=Path)),
    metavar="LANG TITLE FILE",
    help="The title and text in another interface language (ru, tk, en), shown to "
    "readers who choose it; repeat for each language. Example: "
    "--translation ru 'Свободу прессе' text-ru.md",
)
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An organizer public key file (NAME.pub); repeat for several organizers. "
    "Every contact is sealed to all of them.",
)
@click.option(
    "--dev",
    is_flag=True,
    help="Allow a DEV instance (the demo's, or made with `init --dev`), for trying only: "
    "its master key is in clear on disk, so a copy of the folder tells who signed.",
)
def create_petition(
    slug: str,
    title: str,
    text_file: Path,
    identifier_kind: str,
    region: str | None,
    translations: tuple[tuple[str, str, Path], ...],
    recipients: tuple[Path, ...],
    dev: bool,
) -> None:
    """Create an open petition at /p/SLUG.

    A phone petition needs --region (or `--region none`). Refused on a DEV instance
    unless --dev.
    """
    from anonsign.cli.dev import is_dev_instance, refuse_dev_instance, warn_dev_instance
    from anonsign.crypto.keys import load_public_key
    from anonsign.domain.identifiers import IdentifierKind
    from anonsign.domain.petitions import InvalidPetition, Recipient, validate_translation
    from anonsign.service import Service

    settings = _settings()
    if not dev:
        refuse_dev_instance(settings, doing="Not created")
    kind = IdentifierKind(identifier_kind)
    region = _phone_region(kind, region)

    def read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidPetition(f"Cannot read the text file {path}: {exc}.") from None

    text = read(text_file)
    versions = [validate_translation(lang, t, read(path)) for lang, t, path in translations]
    keys = [Recipient(name=path.stem[:64], key=load_public_key(path)) for path in recipients]
    service = Service.open(settings)
    try:
        created = service.create_petition(
            slug=slug,
            title=title,
            text=text,
            identifier_kind=kind,
            phone_region=region,
            recipients=keys,
            translations=versions,
        )
    finally:
        service.close_connections()
    click.echo(f"Created petition {created.slug!r}: open at /p/{created.slug}")
    for version in created.translations:
        click.echo(f"  with a {version.lang} version: {version.title}")
    for recipient in created.recipients:
        click.echo(f"  contacts sealed to {recipient.name} ({recipient.key.fingerprint})")
    if kind is IdentifierKind.PHONE and created.phone_region is None:
        click.echo("  phone numbers are accepted only with + and their country code")
    if is_dev_instance(settings):
        warn_dev_instance(settings)


#: What `--region none` says: a phone petition open to every country's numbers, each
#: written in full (+country code).
NO_REGION = "none"


class RegionNeeded(AnonsignError):
    """A phone petition needs --region: the country whose numbers signers may write
    without a country code (such as TM), or `--region none`."""


def _phone_region(kind: IdentifierKind, region: str | None) -> str | None:
    """The region to store: a phone petition must say it, `none` included."""
    from anonsign.domain.identifiers import IdentifierKind

    if kind is not IdentifierKind.PHONE:
        return region  # the service refuses a region here, in one line
    if region is None:
        raise RegionNeeded(
            "A phone petition needs --region: the two-letter country whose numbers signers "
            "may write without a country code (with --region TM, 8 65 123456 and 65123456 "
            "are +993 65 123456); give `--region none` to accept only numbers written "
            "with + and their country code."
        )
    return None if region.strip().lower() == NO_REGION else region


@petition.command("list")
def list_petitions() -> None:
    """List every petition with its state and counts.

    "published" signatures are in the public log; "waiting" ones are counted and enter
    it with the next batch. The list is in the encrypted database: unlock first.
    """
    from rich.console import Console
    from rich.table import Table

    from anonsign.instance import InstanceLocked
    from anonsign.service import Service

    try:
        service = Service.open(_settings())
    except InstanceLocked:
        raise InstanceLocked(
            "The instance is locked, so its petitions cannot be listed (their states and "
            "counts are in the encrypted database): run `anonsign unlock` first."
        ) from None
    try:
        summaries = service.summaries()
    finally:
        service.close_connections()
    if not summaries:
        click.echo("No petitions yet. Create one with `anonsign petition create`.")
        return
    table = Table(
        "petition", "state", "signed with", "published", "waiting", "contacts", "organizer keys"
    )
    for s in summaries:
        p = s.petition
        kind = p.identifier_kind.value + (f" ({p.phone_region})" if p.phone_region else "")
        table.add_row(
            p.slug,
            p.state.value,
            kind,
            str(s.published),
            str(s.waiting),
            str(s.contacts),
            ", ".join(r.name for r in p.recipients),
        )
    Console().print(table)
    click.echo(
        "published: signatures in the public log; waiting: counted, and published with the "
        "next batch (`anonsign log publish` to publish now)."
    )


@petition.command("close")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@PASSPHRASE_FILE
def close_petition(slug: str, yes: bool, passphrase_file: Path | None) -> None:
    """Close a petition for good and destroy its secret pepper.

    After this, nobody (the server's holder included) can test whether an identifier
    signed. The master key is replaced too, and the running server's workers with it,
    so no process that serves still holds a key that opened the closed petition's
    secret: this needs the unlock passphrase, to seal the new key. It cannot be undone.
    """
    from anonsign.cli.confirm import confirm_or_stop
    from anonsign.cli.passphrase import read_passphrase
    from anonsign.instance import uses_dev_master_key
    from anonsign.server_control import find_server, replace_workers
    from anonsign.service import Service

    settings = _settings()
    service = Service.open(settings)
    try:
        if not service.petition(slug).is_open:  # a clear error before asking anything
            raise AlreadyClosed(
                f"{slug!r} is already closed: its pepper was destroyed then; nothing was done."
            )
        if not yes:
            confirm_or_stop(
                f"Close {slug!r} for good? It stops accepting signatures and its secret is "
                "destroyed",
                declined=f"{slug!r} was not closed.",
            )
        passphrase = None
        if not uses_dev_master_key(settings):
            passphrase = read_passphrase(passphrase_file, new=False)
        service.witnesses  # noqa: B018 - a bad witnesses file is an error before the close
        closed = service.close(slug, passphrase=passphrase)
        click.echo(f"Closed {closed.slug!r}; its pepper is destroyed and the master key replaced.")
        # The final count is the one the addressee will be shown: have it witnessed now.
        _echo_witnessing(service, slug)
    finally:
        service.close_connections()
    server = find_server(settings)
    if server is None:
        click.echo("No server is running for this instance; it will start with the new key.")
    else:
        retired = replace_workers(server)
        click.echo(
            f"Replaced the server's {retired} worker process(es): no serving process holds "
            "the old master key."
        )


class AlreadyClosed(AnonsignError):
    """This petition is already closed; nothing was done."""


# --- contacts (server side) ---------------------------------------------------------------


@click.command("export")
@click.argument("slug")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (mode 0600). Carry it to the offline machine.",
)
def export_contacts(slug: str, out: Path) -> None:
    """Write a petition's sealed contacts to a file; only organizer keys can open it."""
    from anonsign.contacts_export import dump_export
    from anonsign.files import write_private_file
    from anonsign.service import Service

    service = Service.open(_settings())
    try:
        petition, sealed = service.sealed_contacts(slug)
    finally:
        service.close_connections()
    write_private_file(out, dump_export(petition.slug, petition.id, sealed).encode("ascii"))
    click.echo(f"Wrote {len(sealed)} sealed contacts of {petition.slug!r} to {out}.")
    click.echo("Open them on the offline machine: anonsign contacts decrypt FILE --key NAME.key")


# --- the public log -------------------------------------------------------------------------


@click.group("log")
def log_group() -> None:
    """The petitions' public logs: publish pending signatures, print the verifier key."""


@log_group.command("publish")
@click.argument("slug", required=False)
@click.option("--all", "all_open", is_flag=True, help="Every open petition.")
@click.option(
    "--due",
    is_flag=True,
    help="Only where a batch is due (ANONSIGN_PUBLISH_MIN signatures waiting and "
    "ANONSIGN_PUBLISH_INTERVAL seconds passed), as the server does by itself.",
)
def publish_log(slug: str | None, all_open: bool, due: bool) -> None:
    """Add pending signatures to the log and sign a new checkpoint (idempotent).

    By default publishes now, whatever is pending (even one signature: mind that a
    count moving by one tells an observer that someone just signed). Safe to run while
    the server runs, and from several processes at once.
    """
    from anonsign.cli.publishing import not_published_line
    from anonsign.service import Service

    if bool(slug) == all_open:
        raise click.UsageError("Give one petition name, or --all.")
    service = Service.open(_settings())
    try:
        slugs = [slug] if slug else [p.slug for p in service.petitions(open_only=True)]
        for name in slugs:
            checkpoint = service.publish(name, force=not due)
            if checkpoint is None:
                status = service.publish_status(name)
                click.echo(not_published_line(name, status, service.policy))
            else:
                click.echo(f"{name}: published a checkpoint of size {checkpoint.size}.")
            _echo_witnessing(service, name)
    finally:
        service.close_connections()


def _echo_witnessing(service: Service, slug: str) -> None:
    """Offer the latest checkpoint to the witnesses, and say what each answered."""
    outcomes = service.witness(slug)
    if not outcomes:
        return
    cosigned = [o for o in outcomes if o.line is not None]
    click.echo(f"{slug}: {len(cosigned)} of {len(outcomes)} witnesses cosigned the checkpoint.")
    for outcome in outcomes:
        if outcome.problem is not None:
            click.echo(f"  not cosigned: {outcome.problem}")


@log_group.command("key")
def log_key() -> None:
    """Print the verifier key of this server's log, for auditors.

    Auditors check every checkpoint against it (`anonsign audit verify --key FILE`).
    Publish it apart from the server (a website, a press release), so that whoever
    controls the server cannot hand out another. Needs no unlock: the key is public.
    """
    from anonsign.instance import load_log_signer

    click.echo(load_log_signer(_settings()).verifier_key())
