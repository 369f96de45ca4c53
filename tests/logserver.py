"""An honest petition log in memory, and a tiny HTTP server that serves it as anonsign does.

Used by the audit tests: the server speaks the endpoint contract of the real one
(``/.well-known/anonsign/key``, ``/p/<slug>/checkpoint``, the entry bundles
``/p/<slug>/tile/entries/<N>[.p/<W>]``, ``/p/<slug>/log/consistency`` and
``.../inclusion``), listens on 127.0.0.1 only, and can be told to misbehave
(``faults``).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from anonsign.audit import merkle, tiles
from anonsign.audit.bundle import write_bundle
from anonsign.audit.checkpoint import Checkpoint
from anonsign.crypto.notes import LogSigner


@dataclass
class HonestLog:
    """A petition log built as the server builds it: entries appended, checkpoints signed."""

    signer: LogSigner
    slug: str
    entries: list[bytes]
    store: merkle.MemoryNodeStore = field(default_factory=merkle.MemoryNodeStore)

    def __post_init__(self) -> None:
        for entry in self.entries:
            self.store.append(merkle.leaf_hash(entry))

    @property
    def origin(self) -> str:
        return f"{self.signer.name}/{self.slug}"

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        size = len(self.entries) if size is None else size
        return Checkpoint(self.origin, size, merkle.tree_root(size, self.store))

    def note(self, size: int | None = None, signer: LogSigner | None = None) -> str:
        return (signer or self.signer).sign(self.checkpoint(size).to_text())

    def grow(self, count: int) -> None:
        for _ in range(count):
            entry = os.urandom(32)
            self.entries.append(entry)
            self.store.append(merkle.leaf_hash(entry))


def make_log(size: int, signer: LogSigner, slug: str = "demo") -> HonestLog:
    return HonestLog(signer, slug, [os.urandom(32) for _ in range(size)])


def write_log_bundle(
    path: Path,
    log: HonestLog,
    *,
    entries: list[bytes] | None = None,
    note: str | None = None,
    key_text: str | None = None,
    origin: str | None = None,
    source: str | None = None,
) -> Path:
    """Write ``log`` as a bundle, with any part replaced by a tampered one."""
    write_bundle(
        path,
        origin=origin or log.origin,
        source=source,
        key_text=key_text if key_text is not None else log.signer.verifier_key() + "\n",
        checkpoint_note=note if note is not None else log.note(),
        entries=log.entries if entries is None else entries,
    )
    return path


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode("ascii") for v in values]


class LogServer:
    """Serves one HonestLog over HTTP on 127.0.0.1, on a free port, in a thread.

    ``faults`` changes what it answers: ``"status"`` → {path: code}, ``"leaves"`` → serve
    these entries instead, ``"bundles"`` → {path: bytes} served as those entry bundles,
    ``"key"`` / ``"note"`` → serve this text, ``"size"`` → checkpoint at this size,
    ``"consistency"`` → serve these proof hashes, ``"redirect"`` → 302 everything.
    """

    def __init__(self, log: HonestLog) -> None:
        self.log = log
        self.faults: dict[str, Any] = {}
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base}/p/{self.log.slug}"

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, str | bytes]:
        """(status, content type, body) for one GET."""
        faults, log = self.faults, self.log
        if faults.get("redirect"):
            return 302, "text/plain", ""
        if path in faults.get("status", {}):
            return faults["status"][path], "application/json", json.dumps({"error": "broken"})
        prefix = f"/p/{log.slug}"
        if path == "/.well-known/anonsign/key":
            return 200, "text/plain", faults.get("key", log.signer.verifier_key() + "\n")
        if path == f"{prefix}/checkpoint":
            return 200, "text/plain", faults.get("note") or log.note(faults.get("size"))
        arg = {k: v[0] for k, v in query.items()}
        if path.startswith(f"{prefix}/tile/entries/"):
            return self._entry_bundle(path.removeprefix(f"{prefix}/"))
        if path == f"{prefix}/log/consistency":
            old, new = int(arg["from"]), int(arg["to"])
            hashes = faults.get("consistency") or merkle.consistency_proof(old, new, log.store)
            return 200, "application/json", json.dumps({"hashes": _b64(hashes)})
        if path == f"{prefix}/log/inclusion":
            leaf = arg["leaf"]
            entry = base64.urlsafe_b64decode(leaf + "=" * (-len(leaf) % 4))
            size = int(arg["size"])
            if entry not in log.entries[:size]:
                return 404, "application/json", json.dumps({"error": "no such entry"})
            index = log.entries.index(entry)
            hashes = merkle.inclusion_proof(index, size, log.store)
            body = {"index": index, "size": size, "hashes": _b64(hashes)}
            return 200, "application/json", json.dumps(body)
        return 404, "application/json", json.dumps({"error": "There is no petition here."})

    def _entry_bundle(self, path: str) -> tuple[int, str, str | bytes]:
        """The entry bundle at ``path`` of the tree the checkpoint names, if it has one."""
        if path in self.faults.get("bundles", {}):
            return 200, "application/octet-stream", self.faults["bundles"][path]
        entries = self.faults.get("leaves", self.log.entries)
        size = self.faults.get("size", len(self.log.entries))
        for ref in tiles.entry_bundles(size):
            if ref.path == path:
                first = ref.index * tiles.TILE_WIDTH
                bundle = tiles.encode_entry_bundle(entries[first : first + ref.width])
                return 200, "application/octet-stream", bundle
        return 404, "text/plain", "no such tile"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                server.requests.append(self.path)
                status, kind, body = server.answer(parts.path, parse_qs(parts.query))
                data = body if isinstance(body, bytes) else body.encode("utf-8")
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        return Handler

    @contextmanager
    def running(self) -> Iterator[LogServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
