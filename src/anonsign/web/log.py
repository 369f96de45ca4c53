"""The public log over HTTP: verifier key, checkpoints, tiles, leaves, proofs (read-only).

Everything here is public by design: entries are dedup keys, meaningless without a
petition's pepper. The log is served in the C2SP tlog-tiles layout under
``/p/<slug>/`` (``checkpoint``, ``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]``),
so any tlog-tiles client reads it; the JSON endpoints (``log/leaves``, ``log/inclusion``,
``log/consistency``) stay for the clients written before the tiles (docs/formats.md).

The checkpoint, like every other answer, is ``no-store``: an auditor always sees the
latest. A tile is the one exception, ``immutable`` for a year: its bytes at one path never
change, and a tile says nothing about who fetched it. Bad parameters answer 400 with a
JSON ``{"error": ...}`` that says what to fix; a tile the published tree does not have
answers 404.
"""

from __future__ import annotations

import base64
import binascii
import re

from flask import Blueprint, Flask, Response, jsonify, request

from anonsign.audit.tiles import TileError, parse_tile_path
from anonsign.errors import PetitionNotFound
from anonsign.service import LogQueryError
from anonsign.web.public import service

bp = Blueprint("log", __name__)

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,15}")


def _text(body: str) -> Response:
    return Response(body, mimetype="text/plain")


def _int_arg(name: str) -> int:
    raw = request.args.get(name)
    if raw is None:
        raise LogQueryError(f"The parameter {name!r} is required.")
    if not _DECIMAL.fullmatch(raw):
        raise LogQueryError(f"The parameter {name!r} must be a whole number, not {raw[:40]!r}.")
    return int(raw)


def _entry_arg(name: str) -> bytes:
    raw = request.args.get(name, "")
    try:
        value = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        value = b""
    if len(value) != 32:
        raise LogQueryError(f"The parameter {name!r} must be a 32-byte entry in base64url.")
    return value


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode("ascii") for v in values]


@bp.get("/.well-known/anonsign/key")
def verifier_key() -> Response:
    return _text(service().verifier_key() + "\n")


@bp.get("/p/<slug>/checkpoint")
def checkpoint(slug: str) -> Response:
    # With the witnesses' cosignatures after the log's signature (anonsign.witness).
    return _text(service().served_checkpoint(slug).note)


@bp.get("/p/<slug>/tile/<path:rest>")
def tile(slug: str, rest: str) -> Response:
    """A hash tile or entry bundle, tlog-tiles layout (anonsign.audit.tiles)."""
    try:
        ref = parse_tile_path(rest)
    except TileError as error:
        raise LogQueryError(error.message) from None
    data = service().tile(slug, ref)
    if data is None:
        return Response(
            "The published log has no such tile (yet).\n", status=404, mimetype="text/plain"
        )
    # web.headers makes it immutable: a tile's bytes at one path never change (a partial
    # tile of another width is another path).
    return Response(data, mimetype="application/octet-stream")


@bp.get("/p/<slug>/log/leaves")
def leaves(slug: str) -> Response:
    start, end = _int_arg("start"), _int_arg("end")
    return jsonify({"leaves": _b64(service().leaves(slug, start, end))})


@bp.get("/p/<slug>/log/inclusion")
def inclusion(slug: str) -> Response:
    entry, size = _entry_arg("leaf"), _int_arg("size")
    index, hashes = service().inclusion(slug, entry, size)
    return jsonify({"index": index, "size": size, "hashes": _b64(hashes)})


@bp.get("/p/<slug>/log/consistency")
def consistency(slug: str) -> Response:
    old_size, new_size = _int_arg("from"), _int_arg("to")
    return jsonify({"hashes": _b64(service().consistency(slug, old_size, new_size))})


@bp.errorhandler(LogQueryError)
def _bad_query(error: LogQueryError) -> tuple[Response, int]:
    return jsonify({"error": error.message}), 400


@bp.errorhandler(PetitionNotFound)
def _no_petition(_error: PetitionNotFound) -> tuple[Response, int]:
    return jsonify({"error": "There is no petition at this address."}), 404


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
