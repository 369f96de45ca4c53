"""``anonsign witness``: a witness another organisation runs for a petition log.

A witness (c2sp.org/tlog-witness) holds its own Ed25519 key and, per log it witnesses,
the latest size it cosigned. It cosigns a checkpoint only if it extends that one, so a
server that showed two different logs would be refused by every honest witness. Its
folder holds ``witness.key`` (mode 0600) and ``witness.db``; nothing of any signer.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import click

from anonsign.crypto.cosign import WitnessSigner
from anonsign.crypto.notes import NoteError, NoteVerifier
from anonsign.errors import AnonsignError
from anonsign.files import write_private_file

KEY_FILE = "witness.key"
STATE_FILE = "witness.db"
KEY_HEADER = "anonsign-witness-key-v1"


class WitnessFolderError(AnonsignError):
    """This is not a witness folder; make one with `anonsign witness init`."""


def _key_text(signer: WitnessSigner) -> str:
    raw = base64.b64encode(signer.to_private_bytes()).decode("ascii")
    return f"{KEY_HEADER}\nname: {signer.name}\nkey: {raw}\n"


def load_witness_signer(folder: Path) -> WitnessSigner:
    path = folder / KEY_FILE
    try:
        header, name_line, key_line = path.read_text(encoding="ascii").splitlines()
        if header != KEY_HEADER or not name_line.startswith("name: "):
            raise ValueError
        raw = base64.b64decode(key_line.removeprefix("key: "), validate=True)
        return WitnessSigner.from_private_bytes(name_line.removeprefix("name: "), raw)
    except FileNotFoundError:
        raise WitnessFolderError(
            f"{path} does not exist; make the witness with `anonsign witness init {folder}`."
        ) from None
    except (ValueError, UnicodeDecodeError, NoteError):
        raise WitnessFolderError(f"{path} is not an anonsign witness key; it is damaged.") from None


def _state(folder: Path) -> Any:
    from anonsign.witness.state import WitnessState

    load_witness_signer(folder)  # a folder with a key, not a typo
    return WitnessState(folder / STATE_FILE)


@click.group("witness")
def witness() -> None:
    """Run a witness: cosign a petition log's checkpoints only as the log grows."""


FOLDER = click.argument("folder", type=click.Path(file_okay=False, path_type=Path))


@witness.command("init")
@FOLDER
@click.option(
    "--name",
    required=True,
    help="The witness's key name: a URL-like name that is yours, e.g. witness.example.org/w1.",
)
def init(folder: Path, name: str) -> None:
    """Make a witness key and an empty state in FOLDER; print the verifier key to publish."""
    if (folder / KEY_FILE).exists():
        raise WitnessFolderError(f"{folder / KEY_FILE} exists already; this folder is a witness.")
    signer = WitnessSigner.generate(name)
    folder.mkdir(parents=True, exist_ok=True)
    write_private_file(folder / KEY_FILE, _key_text(signer).encode("ascii"))
    _state(folder)
    click.echo(f"Witness {name} made in {folder}.")
    click.echo("Its verifier key (give it to the logs you witness and to their auditors):")
    click.echo(signer.verifier_key())


@witness.command("add-log")
@FOLDER
@click.option("--origin", required=True, help="The log's checkpoint origin (<log name>/<slug>).")
@click.option("--key", "key", required=True, help="The log's verifier key (text or a file).")
def add_log(folder: Path, origin: str, key: str) -> None:
    """Witness the log ORIGIN, whose checkpoints KEY signs."""
    text = Path(key).read_text(encoding="utf-8") if Path(key).is_file() else key
    verifier = NoteVerifier.from_verifier_key(text)
    if not origin.startswith(f"{verifier.name}/") and origin != verifier.name:
        click.echo(
            f"Note: the origin {origin!r} does not start with the key's name {verifier.name!r}.",
            err=True,
        )
    new = _state(folder).add_log(origin, verifier.verifier_key())
    click.echo(
        f"{'Witnessing' if new else 'Still witnessing (key replaced)'} {origin}, "
        f"signed by {verifier.verifier_key()}."
    )


@witness.command("status")
@FOLDER
def status(folder: Path) -> None:
    """The witness's key and, per log, the latest size it cosigned and any refusals."""
    signer = load_witness_signer(folder)
    state = _state(folder)
    click.echo(f"Witness {signer.name}: {signer.verifier_key()}")
    logs = state.logs()
    if not logs:
        click.echo("No logs yet: add one with `anonsign witness add-log`.")
    for log in logs:
        refused = state.refused(log.origin)
        note = f", {len(refused)} refused (evidence kept)" if refused else ""
        click.echo(f"  {log.origin}: cosigned up to size {log.size:,}{note}")


@witness.command("serve")
@FOLDER
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on (keep it local: an onion service in front reaches it).",
)
@click.option("--port", default=8030, show_default=True, type=int, help="The port to listen on.")
def serve(folder: Path, host: str, port: int) -> None:
    """Serve POST /add-checkpoint at http://HOST:PORT/ (put it behind an onion service)."""
    from gunicorn.app.base import BaseApplication

    from anonsign.cli.gunicorn_app import PrivateLogger
    from anonsign.witness.app import create_witness_app
    from anonsign.witness.service import Witness

    witness_ = Witness(load_witness_signer(folder), _state(folder))
    app = create_witness_app(witness_)
    options = {
        "bind": [f"{host}:{port}"],
        "workers": 1,
        "threads": 4,
        "worker_class": "gthread",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "logger_class": PrivateLogger,
        "control_socket_disable": True,
        "proc_name": "anonsign-witness",
    }

    class WitnessServer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return app

    logging.getLogger("anonsign").info("witness %s on %s:%d", witness_.signer.name, host, port)
    click.echo(f"Witness {witness_.signer.name} listening on http://{host}:{port}/ ", err=True)
    WitnessServer().run()
