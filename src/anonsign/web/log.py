"""The public log over HTTP: verifier key, checkpoints, leaves, proofs (read-only).

Everything here is public by design: entries are dedup keys, meaningless without a
petition's pepper. Answers are never cached (``no-store`` on every response), so an
auditor always sees the latest checkpoint. Bad parameters answer 400 with a JSON
``{"error": ...}`` that says what to fix.
"""

from __future__ import annotations

import base64
import binascii
import re

from flask import Blueprint, Flask, Response, jsonify, request

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
    return _text(service().checkpoint(slug).note)


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
