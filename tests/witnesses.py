"""Witnesses served over real HTTP (werkzeug's threaded server on 127.0.0.1, a port of its
own), each with its own key and state file, as another organisation would run one. The
fixture ``make_witness`` (tests/conftest.py) starts them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from werkzeug.serving import make_server

from anonsign.service import Service
from anonsign.witness.app import create_witness_app
from anonsign.witness.service import Witness


@dataclass
class RunningWitness:
    witness: Witness
    url: str

    @property
    def key(self) -> str:
        return self.witness.signer.verifier_key()

    @property
    def line(self) -> str:
        """Its line in a log's witnesses file."""
        return f"{self.url} {self.key}\n"


@contextmanager
def serving(witness: Witness) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_witness_app(witness), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


MakeWitness = Callable[[str], RunningWitness]


def witnessed_by(service: Service, *witnesses: RunningWitness, origins: list[str]) -> None:
    """Configure the log to offer its checkpoints to ``witnesses``, and each witness to
    witness ``origins`` with the log's key."""
    for running in witnesses:
        for origin in origins:
            running.witness.state.add_log(origin, service.verifier_key())
    service.settings.witnesses_file.write_text("".join(w.line for w in witnesses))
    service._witnesses = None  # read the file again
