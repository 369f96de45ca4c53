"""The C2SP tlog-tiles layout of a petition log: which tiles a tree has, their paths, and
the entry bundle encoding (https://c2sp.org/tlog-tiles).

A tiled log serves its Merkle tree as *tiles*: the hash tile ``(level, n)`` holds up to
256 consecutive hashes, hash ``i`` being the Merkle Tree Hash of the complete subtree of
``256**level`` entries that starts at entry ``(n * 256 + i) * 256**level``. In the
language of this project's store (``anonsign.storage.log_store``), that is the stored
complete-subtree hash at tree height ``8 * level`` and index ``n * 256 + i``: the tiles are
the hashes written as batches publish, read as one range, never recomputed. The entry
bundle ``n`` holds entries ``n * 256`` to ``n * 256 + 255``, each as a big-endian uint16
length and the entry's bytes.

The rightmost tile of each level is usually *partial* (1 to 255 hashes, path suffix
``.p/<W>``); the spec requires that a log serve the partial tiles of every size it
signed a checkpoint for, and a partial tile's bytes are a prefix of the full tile it
grows into, so any width up to the published one can be answered from the same rows.

Importable by an auditor with the standard library alone (like ``anonsign.audit.merkle``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from anonsign.errors import AnonsignError

__all__ = [
    "ENTRY_BUNDLE_MAX",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileError",
    "TileRef",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "entry_bundles",
    "parse_tile_path",
    "tile_path",
    "tile_width",
]

#: Tree levels a tile spans (the spec fixes it at 8).
TILE_HEIGHT = 8
#: Hashes in a full tile, and entries in a full entry bundle.
TILE_WIDTH = 1 << TILE_HEIGHT
#: Levels a tile path may name (the spec: 0 to 63).
MAX_LEVEL = 63
#: The largest entry bundle this log serves: 256 entries of 32 bytes, each with its
#: 2-byte length (a client reading another log must allow up to 256 x 65,537 bytes).
ENTRY_BUNDLE_MAX = TILE_WIDTH * (2 + 32)

_LEVEL = r"(?P<level>0|[1-9][0-9]?)"
_INDEX = r"(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
_WIDTH = r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
_PATH = re.compile(rf"(?:{_LEVEL}|(?P<entries>entries))/{_INDEX}{_WIDTH}")


class TileError(AnonsignError):
    """A tile path that does not follow the tlog-tiles layout, or a malformed bundle."""


@dataclass(frozen=True)
class TileRef:
    """One tile: a hash tile at ``level`` (``None`` for an entry bundle), its index within
    the level and its width (``TILE_WIDTH`` for a full tile)."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def is_entries(self) -> bool:
        return self.level is None

    @property
    def path(self) -> str:
        return tile_path(self.level, self.index, self.width)


def _encode_index(index: int) -> str:
    parts = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        parts.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(parts))


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``, or ``tile/entries/<N>[.p/<W>]`` when ``level`` is None.

    >>> tile_path(0, 1234067, 5)
    'tile/0/x001/x234/067.p/5'
    """
    if level is not None and not 0 <= level <= MAX_LEVEL:
        raise TileError(f"A tile level is 0 to {MAX_LEVEL}, not {level}.")
    if index < 0:
        raise TileError(f"A tile index is not negative, not {index}.")
    if not 1 <= width <= TILE_WIDTH:
        raise TileError(f"A tile is 1 to {TILE_WIDTH} wide, not {width}.")
    name = "entries" if level is None else str(level)
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{name}/{_encode_index(index)}{suffix}"


def parse_tile_path(path: str) -> TileRef:
    """The tile a path after ``tile/`` names, in exactly the spec's one spelling.

    Leading zeros, a width of 256 written as partial, a level above 63 and anything else
    the spec does not allow are refused, so each tile has one address (a cache never
    holds two copies under two names).
    """
    match = _PATH.fullmatch(path)
    if match is None:
        raise TileError(
            "A tile path is <level>/<index>[.p/<width>] or entries/<index>[.p/<width>], "
            "the index in 3-digit groups (x001/234)."
        )
    level = None if match["entries"] else int(match["level"])
    if level is not None and level > MAX_LEVEL:
        raise TileError(f"A tile level is 0 to {MAX_LEVEL}, not {level}.")
    groups = match["index"].split("/")
    if len(groups) > 1 and groups[0] == "x000":
        raise TileError("A tile index has no leading zero group (x000).")
    index = int("".join(group.lstrip("x") for group in groups))
    if match["width"] is None:
        return TileRef(level, index)
    width = int(match["width"])
    if width >= TILE_WIDTH:
        raise TileError(f"A partial tile is 1 to {TILE_WIDTH - 1} wide, not {width}.")
    return TileRef(level, index, width)


def tile_width(size: int, level: int, index: int) -> int:
    """How many hashes the tile ``(level, index)`` of a tree of ``size`` entries holds:
    ``TILE_WIDTH`` when full, 1 to 255 when partial, 0 when the tree has no such tile.
    Entry bundles count as level 0."""
    complete = size >> (TILE_HEIGHT * level)  # complete subtrees of 256**level entries
    return max(0, min(TILE_WIDTH, complete - index * TILE_WIDTH))


def entry_bundles(size: int) -> Iterator[TileRef]:
    """Every entry bundle of a tree of ``size`` entries, in order: full ones, then the
    partial one if the size is not a multiple of 256."""
    for index in range(-(-size // TILE_WIDTH)):
        yield TileRef(None, index, tile_width(size, 0, index))


def encode_entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Big-endian uint16 length-prefixed entries, concatenated."""
    out = bytearray()
    for entry in entries:
        if len(entry) > 0xFFFF:
            raise TileError(f"An entry is at most 65,535 bytes, not {len(entry)}.")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_entry_bundle(data: bytes, width: int) -> list[bytes]:
    """The ``width`` entries of a bundle; anything short, long or left over is refused."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise TileError(f"The entry bundle ends inside the length of entry {len(entries)}.")
        length = int.from_bytes(data[at : at + 2], "big")
        at += 2
        if at + length > len(data):
            raise TileError(f"The entry bundle ends inside entry {len(entries)}.")
        entries.append(data[at : at + length])
        at += length
    if len(entries) != width:
        raise TileError(f"The entry bundle holds {len(entries)} entries, not {width}.")
    return entries
