"""The witness over HTTP: ``POST /add-checkpoint`` (c2sp.org/tlog-witness) and, at ``/``,
the witness's name, verifier key and the logs it witnesses, as text.

The submission and monitoring prefixes are both the server's root. Request bodies over
``MAX_REQUEST_BYTES`` are refused before they are read. Nothing is logged per request:
the witness's operator learns only what the state file keeps.
"""

from __future__ import annotations

from flask import Flask, Response, request

from anonsign.witness.protocol import MAX_REQUEST_BYTES
from anonsign.witness.service import TEXT, Witness

__all__ = ["create_witness_app"]


def create_witness_app(witness: Witness) -> Flask:
    app = Flask("anonsign.witness")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    @app.post("/add-checkpoint")
    def add_checkpoint() -> Response:
        answer = witness.add_checkpoint(request.get_data(cache=False))
        return Response(answer.body, status=answer.status, content_type=answer.content_type)

    @app.get("/")
    def about() -> Response:
        lines = [
            f"anonsign witness {witness.signer.name}",
            f"verifier key: {witness.signer.verifier_key()}",
            "witnessed logs (origin, latest cosigned size):",
            *(f"  {log.origin} {log.size}" for log in witness.state.logs()),
        ]
        return Response("\n".join(lines) + "\n", content_type=TEXT)

    @app.after_request
    def _no_cache(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return response

    return app
