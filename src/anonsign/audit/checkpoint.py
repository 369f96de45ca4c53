"""The checkpoint body: a log's origin, size and root as C2SP tlog-checkpoint text.

c2sp.org/tlog-checkpoint, the note text a log signs::

    <origin>\\n                 non-empty; anonsign uses "<log name>/<petition slug>"
    <tree size>\\n              ASCII decimal, no leading zero (the empty tree is "0")
    <base64 root hash>\\n       standard base64 of the 32-byte RFC 6962/9162 root
    [<extension line>\\n ...]   optional, non-empty, opaque; anonsign writes none

:meth:`Checkpoint.parse` is strict about the three mandatory lines and keeps extension
lines aside (they take no part in equality: two checkpoints are the same tree head when
origin, size and root are). Every failure is a :class:`CheckpointError` naming the
expected and the found value.

This module owns the body's syntax only. It must not sign or verify (the note around
the body is ``anonsign.crypto.notes``), must not judge whether two checkpoints are
consistent (that is ``anonsign.audit.verify``), and imports no web framework and no
database layer.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field

from anonsign.audit.merkle import HASH_SIZE
from anonsign.errors import AnonsignError

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CheckpointError",
    "decode_base64",
    "make_origin",
    "petition_of",
]

#: Tree sizes are unsigned 64-bit in every tlog implementation; anything larger is refused.
MAX_TREE_SIZE = (1 << 64) - 1

_SIZE = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f]")


class CheckpointError(AnonsignError):
    """This is not a checkpoint (C2SP tlog-checkpoint): origin, tree size and root hash lines."""


def decode_base64(text: str) -> bytes | None:
    """Strict standard base64 (RFC 4648 §4, padded, canonical), or None if it is not.

    Each value has exactly one accepted text, so a changed character is never silently
    read as the same bytes.
    """
    try:
        data = text.encode("ascii")
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    # strict_mode still accepts non-zero unused bits in the last character.
    return raw if binascii.b2a_base64(raw, newline=False) == data else None


def _encode_base64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, size (number of entries) and root hash."""

    origin: str
    size: int
    root: bytes
    #: Extension lines of a parsed checkpoint (anonsign writes none); not part of equality.
    extensions: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise CheckpointError("A checkpoint origin must be a non-empty line of text.")
        if _CONTROL.search(self.origin):
            raise CheckpointError(
                f"The checkpoint origin {self.origin[:80]!r} contains a newline or control "
                "character, expected one line of text."
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError(f"A checkpoint size is a whole number, got {self.size!r}.")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(
                f"A checkpoint size is between 0 and {MAX_TREE_SIZE}, got {self.size}."
            )
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            got = len(self.root) if isinstance(self.root, bytes) else type(self.root).__name__
            raise CheckpointError(f"A checkpoint root is {HASH_SIZE} bytes, got {got}.")
        for line in self.extensions:
            if not isinstance(line, str) or not line or _CONTROL.search(line):
                raise CheckpointError(
                    f"A checkpoint extension line must be non-empty text, got {line!r}."
                )

    def to_text(self) -> str:
        """The note text to sign: ``origin\\nsize\\nbase64(root)\\n`` (then any extensions)."""
        lines = [self.origin, str(self.size), _encode_base64(self.root), *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint body (the verified text of its note), strictly."""
        if not isinstance(text, str):
            raise TypeError("a checkpoint body is a str")
        if not text.endswith("\n"):
            raise CheckpointError(
                "This checkpoint does not end with a newline, expected each line to end with one."
            )
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                f"This checkpoint has {len(lines)} line(s), expected at least 3: "
                "origin, tree size and root hash."
            )
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise CheckpointError("This checkpoint's origin (line 1) is empty, expected a name.")
        if not _SIZE.fullmatch(size_text):
            raise CheckpointError(
                f"This checkpoint's tree size (line 2) is {size_text[:40]!r}, expected a "
                "decimal number with no sign, spaces or leading zeros."
            )
        root = decode_base64(root_text)
        if root is None or len(root) != HASH_SIZE:
            got = "not standard base64" if root is None else f"{len(root)} bytes"
            raise CheckpointError(
                f"This checkpoint's root hash (line 3) is {got}, expected the base64 of "
                f"{HASH_SIZE} bytes."
            )
        for number, line in enumerate(extensions, start=4):
            if not line:
                raise CheckpointError(
                    f"This checkpoint's line {number} is empty, expected no empty lines."
                )
        return cls(origin, int(size_text), root, tuple(extensions))


def make_origin(log_name: str, slug: str) -> str:
    """The origin of a petition's log: ``<log name>/<petition slug>``."""
    if not log_name or not slug or "/" in slug:
        raise CheckpointError(
            f"A log origin is <log name>/<petition slug>, got {log_name!r} and {slug!r}."
        )
    return f"{log_name}/{slug}"


def petition_of(origin: str, log_name: str) -> str | None:
    """The petition slug of ``origin`` if it is a log of ``log_name``, else None."""
    prefix = f"{log_name}/"
    slug = origin.removeprefix(prefix)
    if not origin.startswith(prefix) or not slug or "/" in slug:
        return None
    return slug
