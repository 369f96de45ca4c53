"""Commands for the organizer's offline machine: make a key, open the contacts.

Nothing here imports Flask, SQLAlchemy or the server's configuration.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import click

from anonsign.cli.passphrase import read_passphrase

PASSPHRASE_FILE = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the passphrase from the first line of this file "
    "(otherwise ANONSIGN_PASSPHRASE, otherwise a prompt).",
)


@click.command()
@click.argument("name")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for NAME.pub and NAME.key.",
)
@PASSPHRASE_FILE
def keygen(name: str, out_dir: Path, passphrase_file: Path | None) -> None:
    """Make an organizer key pair: NAME.pub (share it) and NAME.key (keep it offline).

    Run this on the offline machine. NAME.key is protected by your passphrase with
    Argon2id (256 MiB) and never leaves that machine; give NAME.pub to the server
    operator for `anonsign petition create --recipient NAME.pub`.
    """
    from anonsign.crypto.keyfile import OrganizerSecretKey, encrypt_secret_key
    from anonsign.crypto.keys import validate_key_name
    from anonsign.files import FileExistsRefused, write_private_file

    name = validate_key_name(name)
    pub_path, key_path = out_dir / f"{name}.pub", out_dir / f"{name}.key"
    for path in (pub_path, key_path):
        if path.exists():
            raise FileExistsRefused(f"{path} already exists; choose another NAME or folder.")
    passphrase = read_passphrase(passphrase_file, new=True)
    key = OrganizerSecretKey.generate()
    click.echo("Protecting the key with your passphrase (Argon2id, 256 MiB)...", err=True)
    secret_text = encrypt_secret_key(key, passphrase, name)
    public = key.public_key()
    write_private_file(key_path, secret_text.encode("utf-8"))
    write_private_file(pub_path, public.public_key_file_text(name).encode("utf-8"))
    pub_path.chmod(0o644)
    click.echo(f"Secret key:  {key_path}  (keep it on this offline machine; back it up offline)")
    click.echo(f"Public key:  {pub_path}  (give this one to the server operator)")
    click.echo(f"Fingerprint: {public.fingerprint}")


@click.command("decrypt")
@click.argument("export_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your organizer secret key (NAME.key).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the contacts as CSV to this new file (mode 0600) instead of standard "
    "output; an existing file is never overwritten.",
)
@PASSPHRASE_FILE
def decrypt_contacts(
    export_file: Path, key_file: Path, out: Path | None, passphrase_file: Path | None
) -> None:
    """Open a contacts export with your secret key, on the offline machine.

    Prints one CSV row per contact (column "contact"), or writes them to --out. Either
    every contact opens or nothing is written: a damaged or foreign file is refused.
    """
    from rich.progress import Progress

    from anonsign.contacts_export import parse_export
    from anonsign.crypto.keyfile import load_secret_key
    from anonsign.crypto.unseal import open_contacts
    from anonsign.errors import ExportFileError
    from anonsign.files import FileExistsRefused, write_private_file

    if out is not None and out.exists():
        # As `contacts export` refuses to: an earlier decryption may be the only copy.
        raise FileExistsRefused(
            f"{out} already exists; anonsign does not overwrite it: choose another --out, "
            "or move that file away first."
        )
    try:
        text = export_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ExportFileError(f"{export_file} is not an anonsign contacts export.") from None
    except OSError as exc:
        raise ExportFileError(f"Cannot read {export_file}: {exc.strerror}.") from None
    export = parse_export(text)
    passphrase = read_passphrase(passphrase_file, new=False)
    _name, key = load_secret_key(key_file, passphrase)

    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("Opening contacts", total=len(export.sealed))
        contacts = open_contacts(
            export.sealed, key, export.petition_id, lambda: progress.advance(task)
        )

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["contact"])
    writer.writerows([c] for c in contacts)
    if out is None:
        click.echo(buffer.getvalue(), nl=False)
    else:
        write_private_file(out, buffer.getvalue().encode("utf-8"))
    where = f" into {out}" if out else ""
    click.echo(f"Opened {len(contacts)} contacts of petition {export.slug!r}{where}.", err=True)
