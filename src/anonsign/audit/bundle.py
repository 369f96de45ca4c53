"""The log bundle an auditor works on, and fetching it (and proofs) from a server.

A bundle (format ``anonsign-log-bundle-v1``) is a folder of four files::

    key           the server's verifier key text, as it served it (NOT trusted: the
                  auditor verifies with a key obtained elsewhere and compares)
    checkpoint    the signed checkpoint note, byte for byte as served
    leaves        one entry per line, standard base64 of 32 bytes (44 characters), in
                  log order, each line ending in "\\n"; empty for an empty log
    bundle.json   {"format": "anonsign-log-bundle-v1", "origin": <checkpoint origin>,
                   "source": <petition address it was fetched from, or null>}

:func:`fetch` fills one from a server's public endpoints, over HTTP(S) with urllib only:
``GET {base}/.well-known/anonsign/key``, ``GET {base}/p/<slug>/checkpoint``, then every
entry bundle of the checkpoint's tree in the tlog-tiles layout
(``GET {base}/p/<slug>/tile/entries/<N>[.p/<W>]``, anonsign.audit.tiles), a few at a
time, each exactly as wide as the size says. It writes into a
hidden sibling folder and renames it into place at the end, so an interrupted fetch
leaves no half bundle. :func:`fetch_consistency` and :func:`fetch_inclusion` are the
small clients of the proof endpoints.

This module moves bytes and checks their syntax; it must not decide whether a log is
honest (that is ``anonsign.audit.verify``), never follows redirects (an auditor names the
server it trusts), and imports no web framework and no database layer. Every failure is
a :class:`BundleError` naming the file (and line) or a :class:`FetchError` naming the
address, each one sentence.
"""

from __future__ import annotations

import binascii
import http.client
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, Any

from anonsign.audit.checkpoint import Checkpoint, CheckpointError, decode_base64
from anonsign.audit.merkle import HASH_SIZE
from anonsign.audit.tiles import (
    ENTRY_BUNDLE_MAX,
    TILE_WIDTH,
    TileError,
    TileRef,
    decode_entry_bundle,
    entry_bundles,
)
from anonsign.crypto.notes import MAX_NOTE_CHARS, NoteError, parse_note
from anonsign.errors import AnonsignError

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "BundleError",
    "FetchError",
    "InclusionProof",
    "PetitionAddress",
    "Progress",
    "encode_entry",
    "fetch",
    "fetch_consistency",
    "fetch_inclusion",
    "parse_petition_url",
    "read_bundle",
    "write_bundle",
]

#: The ``format`` value of ``bundle.json``; a new layout gets a new version.
BUNDLE_FORMAT = "anonsign-log-bundle-v1"
KEY_FILE = "key"
CHECKPOINT_FILE = "checkpoint"
LEAVES_FILE = "leaves"
META_FILE = "bundle.json"

#: Seconds to wait for each answer; onion services over Tor can take tens of seconds.
TIMEOUT = 120
#: No version in the User-Agent: it would only help tell auditors apart.
USER_AGENT = "anonsign-audit"
MAX_KEY_BYTES = 64 * 1024
MAX_CHECKPOINT_BYTES = 4 * MAX_NOTE_CHARS
MAX_META_BYTES = 64 * 1024
#: One page of leaves: a server pages far below this (100,000 entries are ~5 MB of JSON).
MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_PROOF_BYTES = 256 * 1024
#: Entry bundles in flight at once (each answer waits on a Tor round trip), and how many
#: are fetched before they are written (what a fetch holds: about 8.7 KB a bundle).
FETCH_PARALLEL = 4
FETCH_WINDOW = 64

#: ``progress(done, total)``: called after the checkpoint (0, size) and after each
#: window of entry bundles.
Progress = Callable[[int, int], None]

_LINE_CHARS = 44  # base64 of 32 bytes: 43 characters and one "="
# The 43rd character carries the last 4 bits of the entry and 2 unused bits, which must be
# zero: only these characters have them so, and any other spells the same bytes twice.
_CANONICAL_LAST = frozenset(b"AEIMQUYcgkosw048")
_WRITE_LINES = 65_536  # entries encoded and written at a time
_SLUG = r"[A-Za-z0-9._~-]+"
_PETITION_PATH = re.compile(rf"(?P<prefix>(?:/[^/]+)*?)/p/(?P<slug>{_SLUG})/?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BundleError(AnonsignError):
    """This folder is not a readable log bundle; fetch it again with `anonsign audit fetch`."""


class FetchError(AnonsignError):
    """The server did not answer as an anonsign server should; check the address and retry."""


# --- entries ------------------------------------------------------------------------------


def encode_entry(entry: bytes) -> str:
    """One line of ``leaves`` (without its newline): standard base64 of a 32-byte entry."""
    if len(entry) != HASH_SIZE:
        raise BundleError(f"A log entry is {HASH_SIZE} bytes, got {len(entry)}.")
    return binascii.b2a_base64(entry, newline=False).decode("ascii")


def _describe_line(body: bytes) -> str:
    """What a bad ``leaves`` line holds, for the error message."""
    if not body:
        return "nothing"
    try:
        decoded = binascii.a2b_base64(body, strict_mode=True)
    except binascii.Error:
        return f"{len(body)} characters that are not standard base64"
    if len(decoded) != HASH_SIZE:
        return f"the base64 of {len(decoded)} bytes"
    return "a non-canonical base64 spelling (its last character has unused bits set)"


@dataclass(frozen=True)
class Bundle:
    """A bundle folder: its small files read, its entries streamed on demand."""

    path: Path
    origin: str
    source: str | None
    key_text: str
    checkpoint_note: str

    @property
    def leaves_path(self) -> Path:
        return self.path / LEAVES_FILE

    def entries(self) -> Iterator[bytes]:
        """Yield the 32-byte entries of ``leaves`` in log order, reading line by line.

        Raises :class:`BundleError` naming the line at the first one that is not the
        canonical base64 of 32 bytes. Memory stays constant whatever the log's size.
        """
        path = self.leaves_path
        a2b = binascii.a2b_base64
        canonical = _CANONICAL_LAST
        number = 0
        try:
            with path.open("rb") as fh:
                for number, line in enumerate(fh, start=1):
                    body = line[:-1] if line[-1:] == b"\n" else line
                    if (
                        len(body) != _LINE_CHARS
                        or body[43] != 0x3D  # "="
                        or body[42] not in canonical
                    ):
                        raise self._bad_line(number, body)
                    try:
                        yield a2b(body, strict_mode=True)
                    except binascii.Error:
                        raise self._bad_line(number, body) from None
        except OSError as exc:
            raise BundleError(
                f"Cannot read {path} (after line {number}): {exc.strerror or exc}."
            ) from None

    def _bad_line(self, number: int, body: bytes) -> BundleError:
        return BundleError(
            f"{self.leaves_path} line {number} holds {_describe_line(body)}, expected the "
            f"standard base64 of one {HASH_SIZE}-byte entry ({_LINE_CHARS} characters)."
        )


# --- writing ------------------------------------------------------------------------------


class _BundleWriter:
    """Writes a bundle into a hidden sibling folder, then renames it to its final name."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise BundleError(
                f"{out_dir} already exists and is not an empty folder; choose a new folder "
                "for the bundle."
            )
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(
                tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent)
            )
            self._leaves: IO[bytes] = (self.tmp / LEAVES_FILE).open("wb")
        except OSError as exc:
            raise BundleError(f"Cannot create the bundle folder {out_dir}: {exc}.") from None
        self.count = 0

    def write_text(self, name: str, text: str) -> None:
        (self.tmp / name).write_text(text, encoding="utf-8", newline="")

    def add(self, entries: Iterable[bytes]) -> None:
        # In slices, so that a long iterable (write_bundle's) is never held whole.
        source = iter(entries)
        while lines := [encode_entry(entry) + "\n" for entry in islice(source, _WRITE_LINES)]:
            self._leaves.write("".join(lines).encode("ascii"))
            self.count += len(lines)

    def commit(self, origin: str, source: str | None) -> Path:
        meta = {"format": BUNDLE_FORMAT, "origin": origin, "source": source}
        self.write_text(META_FILE, json.dumps(meta, indent=2) + "\n")
        self._leaves.close()
        try:
            os.replace(self.tmp, self.out_dir)
        except OSError as exc:
            raise BundleError(f"Cannot move the bundle into {self.out_dir}: {exc}.") from None
        return self.out_dir

    def abort(self) -> None:
        self._leaves.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_bundle(
    out_dir: Path,
    *,
    origin: str,
    source: str | None,
    key_text: str,
    checkpoint_note: str,
    entries: Iterable[bytes],
) -> Bundle:
    """Write a bundle folder (which must not exist, or be empty) and return it read back."""
    writer = _BundleWriter(out_dir)
    try:
        writer.write_text(KEY_FILE, key_text)
        writer.write_text(CHECKPOINT_FILE, checkpoint_note)
        writer.add(entries)
        writer.commit(origin, source)
    except BaseException:
        writer.abort()
        raise
    return read_bundle(out_dir)


# --- reading ------------------------------------------------------------------------------


def read_small_text(path: Path, limit: int, what: str = "small text file") -> str:
    """A small UTF-8 file, read without ever holding more than ``limit`` bytes of it."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise BundleError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None
    if len(data) > limit:
        raise BundleError(f"{path} is larger than {limit:,} bytes, expected a {what}.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{path} is not UTF-8 text, expected a {what}.") from None


def read_bundle(path: Path) -> Bundle:
    """Read a bundle folder's small files and check ``bundle.json``; leaves stream later."""
    if not path.is_dir():
        raise BundleError(
            f"{path} is not a folder, expected a log bundle folder made by `anonsign audit fetch`."
        )
    meta_path = path / META_FILE
    try:
        meta: Any = json.loads(read_small_text(meta_path, MAX_META_BYTES))
    except ValueError:
        raise BundleError(
            f"{meta_path} is not valid JSON, expected a bundle description."
        ) from None
    expected_keys = {"format", "origin", "source"}
    if not isinstance(meta, dict) or set(meta) != expected_keys:
        found = sorted(meta) if isinstance(meta, dict) else type(meta).__name__
        raise BundleError(
            f"{meta_path} holds {found}, expected an object with exactly the keys "
            "format, origin and source."
        )
    if meta["format"] != BUNDLE_FORMAT:
        raise BundleError(
            f"{meta_path} says format {meta['format']!r}, expected {BUNDLE_FORMAT!r}; "
            "this anonsign cannot read it."
        )
    origin, source = meta["origin"], meta["source"]
    if not isinstance(origin, str) or not origin:
        raise BundleError(f"{meta_path} has origin {origin!r}, expected a non-empty string.")
    if source is not None and not isinstance(source, str):
        raise BundleError(f"{meta_path} has source {source!r}, expected an address or null.")
    leaves = path / LEAVES_FILE
    if not leaves.is_file():
        raise BundleError(f"{leaves} is missing, expected the log entries (one per line).")
    return Bundle(
        path=path,
        origin=origin,
        source=source,
        key_text=read_small_text(path / KEY_FILE, MAX_KEY_BYTES),
        checkpoint_note=read_small_text(path / CHECKPOINT_FILE, MAX_CHECKPOINT_BYTES),
    )


# --- addresses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PetitionAddress:
    """A petition's address split into the server's base address and the petition slug."""

    base: str
    slug: str

    @property
    def url(self) -> str:
        return f"{self.base}/p/{self.slug}"

    @property
    def key_url(self) -> str:
        return f"{self.base}/.well-known/anonsign/key"

    @property
    def checkpoint_url(self) -> str:
        return f"{self.url}/checkpoint"

    def tile_url(self, ref: TileRef) -> str:
        return f"{self.url}/{ref.path}"

    def leaves_url(self, start: int, end: int) -> str:
        return f"{self.url}/log/leaves?start={start}&end={end}"

    def consistency_url(self, old_size: int, new_size: int) -> str:
        return f"{self.url}/log/consistency?from={old_size}&to={new_size}"

    def inclusion_url(self, entry: bytes, size: int) -> str:
        leaf = binascii.b2a_base64(entry, newline=False).decode("ascii")
        leaf = leaf.replace("+", "-").replace("/", "_").rstrip("=")
        return f"{self.url}/log/inclusion?leaf={leaf}&size={size}"


def parse_petition_url(url: str) -> PetitionAddress:
    """Split ``http(s)://host[/prefix]/p/<slug>`` into base address and slug."""
    example = "expected http(s)://<server>/p/<petition>, such as http://xyz.onion/p/demo"
    text = url.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise FetchError(f"The petition address {text[:200]!r} is not valid, {example}.") from None
    path = _PETITION_PATH.fullmatch(parts.path)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or path is None
        or _CONTROL.search(text)
    ):
        raise FetchError(f"The petition address {text[:200]!r} is not one, {example}.")
    base = f"{parts.scheme}://{parts.netloc}{path.group('prefix')}"
    return PetitionAddress(base=base, slug=path.group("slug"))


# --- HTTP ---------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: the auditor chose the server, a redirect could swap it."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


# ProxyHandler (from the environment) stays in: it is how one reaches an onion service
# through Tor's HTTPTunnelPort; `torsocks anonsign audit ...` works as well.
_OPENER = urllib.request.build_opener(_NoRedirect)


def _server_detail(exc: urllib.error.HTTPError) -> str:
    """The ``{"error": ...}`` an anonsign server puts in a 4xx answer, if any."""
    try:
        body = exc.read(4096)
        detail = json.loads(body).get("error") if body else None
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        detail = None
    finally:
        exc.close()
    if not isinstance(detail, str):
        return ""
    # The server's message is a sentence of its own; the caller ends the line once.
    return f": {_CONTROL.sub('', detail)[:200].strip().rstrip('.')}"


def _get(url: str, limit: int, accept: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": accept})  # noqa: S310 -- the scheme is http(s), checked by parse_petition_url
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            status = response.status
            body: bytes = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        detail = _server_detail(exc)
        raise FetchError(
            f"{url} answered HTTP {exc.code} {exc.reason}, expected 200{detail}."
        ) from None
    except urllib.error.URLError as exc:
        raise FetchError(f"Cannot reach {url}: {exc.reason}.") from None
    except TimeoutError:
        raise FetchError(f"{url} did not answer within {TIMEOUT} seconds.") from None
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"The connection to {url} failed: {exc or type(exc).__name__}.") from None
    if status != 200:
        raise FetchError(f"{url} answered HTTP {status}, expected 200.")
    if len(body) > limit:
        raise FetchError(f"{url} sent more than {limit:,} bytes, expected at most that.")
    return body


def _get_text(url: str, limit: int) -> str:
    try:
        return _get(url, limit, "text/plain").decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError(f"{url} did not answer UTF-8 text, expected text.") from None


def _get_json(url: str, limit: int, keys: set[str]) -> dict[str, Any]:
    try:
        value = json.loads(_get(url, limit, "application/json"))
    except ValueError:
        raise FetchError(f"{url} did not answer valid JSON, expected a JSON object.") from None
    if not isinstance(value, dict) or not keys <= set(value):
        raise FetchError(
            f"{url} answered JSON without {', '.join(sorted(keys))}, expected an object "
            "with those keys."
        )
    return value


def _hashes(url: str, value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise FetchError(f"{url} answered {what} that is not a list, expected a list of base64.")
    result = []
    for i, item in enumerate(value):
        raw = decode_base64(item) if isinstance(item, str) else None
        if raw is None or len(raw) != HASH_SIZE:
            raise FetchError(
                f"{url} answered {what} item {i} that is not the standard base64 of "
                f"{HASH_SIZE} bytes, expected only such items."
            )
        result.append(raw)
    return result


def _size_arg(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FetchError(f"The {name} must be a whole number of 0 or more, got {value!r}.")


# --- fetching -----------------------------------------------------------------------------


def fetch(petition_url: str, out_dir: Path, progress: Progress | None = None) -> Bundle:
    """Fetch a petition's log into a new bundle folder ``out_dir`` and return it.

    Reads the verifier key, then the checkpoint, then exactly the checkpoint's size in
    entries, page by page from where the previous page stopped. Nothing here trusts the
    server: :func:`anonsign.audit.verify.verify_bundle` judges the result.
    """
    address = parse_petition_url(petition_url)
    writer = _BundleWriter(out_dir)
    try:
        writer.write_text(KEY_FILE, _get_text(address.key_url, MAX_KEY_BYTES))
        note = _get_text(address.checkpoint_url, MAX_CHECKPOINT_BYTES)
        try:
            checkpoint = Checkpoint.parse(parse_note(note).text)
        except (NoteError, CheckpointError) as exc:
            raise FetchError(
                f"{address.checkpoint_url} did not answer a checkpoint: {exc}"
            ) from None
        writer.write_text(CHECKPOINT_FILE, note)
        size = checkpoint.size
        if progress is not None:
            progress(0, size)
        bundles = entry_bundles(size)
        with ThreadPoolExecutor(max_workers=FETCH_PARALLEL) as pool:
            # A window at a time, in order: at most FETCH_WINDOW bundles held at once.
            while window := list(islice(bundles, FETCH_WINDOW)):
                for entries in pool.map(partial(_entry_bundle, address), window):
                    writer.add(entries)
                if progress is not None:
                    progress(writer.count, size)
        writer.commit(checkpoint.origin, address.url)
    except BaseException:
        writer.abort()
        raise
    return read_bundle(out_dir)


def _entry_bundle(address: PetitionAddress, ref: TileRef) -> list[bytes]:
    """The entries of one entry bundle; each must be an anonsign entry (32 bytes)."""
    url = address.tile_url(ref)
    try:
        entries = decode_entry_bundle(_get(url, ENTRY_BUNDLE_MAX, "application/octet-stream"),
                                      ref.width)  # fmt: skip
    except TileError as exc:
        raise FetchError(f"{url} did not answer an entry bundle: {exc.message}") from None
    for offset, entry in enumerate(entries):
        if len(entry) != HASH_SIZE:
            raise FetchError(
                f"{url} holds a {len(entry)}-byte entry at index "
                f"{ref.index * TILE_WIDTH + offset:,}, expected {HASH_SIZE} bytes."
            )
    return entries


def fetch_consistency(petition_url: str, old_size: int, new_size: int) -> list[bytes]:
    """Ask the server for the consistency proof between two tree sizes (RFC 9162 §2.1.4).

    The caller checks it with :func:`anonsign.audit.merkle.verify_consistency` against
    two roots it holds from checkpoints it verified.
    """
    _size_arg("old tree size", old_size)
    _size_arg("new tree size", new_size)
    url = parse_petition_url(petition_url).consistency_url(old_size, new_size)
    return _hashes(url, _get_json(url, MAX_PROOF_BYTES, {"hashes"})["hashes"], "hashes")


def fetch_checkpoint(petition_url: str) -> str:
    """The petition's latest signed checkpoint note, unverified (the caller opens it)."""
    return _get_text(parse_petition_url(petition_url).checkpoint_url, MAX_CHECKPOINT_BYTES)


@dataclass(frozen=True)
class InclusionProof:
    """Where an entry sits in the tree of ``size`` leaves, and the path to its root."""

    index: int
    size: int
    hashes: tuple[bytes, ...]


def fetch_inclusion(petition_url: str, entry: bytes, size: int) -> InclusionProof:
    """Ask the server where ``entry`` is in the tree of ``size`` leaves, with its proof.

    The caller checks it with :func:`anonsign.audit.merkle.verify_inclusion` against the
    root of a checkpoint of that size it verified. (The server learns which entry is
    asked about: ask over Tor.)
    """
    if not isinstance(entry, bytes) or len(entry) != HASH_SIZE:
        raise FetchError(f"A log entry is {HASH_SIZE} bytes, got {len(entry)}.")
    _size_arg("tree size", size)
    url = parse_petition_url(petition_url).inclusion_url(entry, size)
    answer = _get_json(url, MAX_PROOF_BYTES, {"index", "size", "hashes"})
    index, answered_size = answer["index"], answer["size"]
    if answered_size != size or isinstance(answered_size, bool):
        raise FetchError(f"{url} answered a proof for size {answered_size!r}, expected {size}.")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise FetchError(
            f"{url} answered index {index!r}, expected a whole number from 0 to {size - 1}."
        )
    return InclusionProof(index, size, tuple(_hashes(url, answer["hashes"], "hashes")))
