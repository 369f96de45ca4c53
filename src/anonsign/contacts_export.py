"""The contacts export file: sealed contacts carried from the server to the offline machine.

Format v1 (text, UTF-8, LF line ends; see docs/formats.md)::

    anonsign-contacts-export-v1
    petition: <slug>
    petition-id: <32 hex digits>
    count: <N>
    <base64 of one sealed contact>      (N lines, in random order)

The petition id is the value bound into every sealed contact, so a contact moved from
another petition's export does not open. Standard library only: the offline machine
needs neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from anonsign.crypto.labels import CONTACTS_EXPORT_HEADER
from anonsign.errors import ExportFileError

_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class ContactsExport:
    slug: str
    petition_id: str
    sealed: tuple[bytes, ...]


def dump_export(slug: str, petition_id: str, sealed: Iterable[bytes]) -> str:
    items = list(sealed)
    lines = [
        CONTACTS_EXPORT_HEADER,
        f"petition: {slug}",
        f"petition-id: {petition_id}",
        f"count: {len(items)}",
    ]
    lines += [base64.b64encode(item).decode("ascii") for item in items]
    return "\n".join(lines) + "\n"


def _field(line: str, name: str, lineno: int) -> str:
    prefix = f"{name}: "
    if not line.startswith(prefix):
        raise ExportFileError(f"Line {lineno} of the export should start with {prefix!r}.")
    return line[len(prefix) :]


def parse_export(text: str) -> ContactsExport:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != CONTACTS_EXPORT_HEADER:
        raise ExportFileError(
            "This is not an anonsign contacts export (made by `anonsign contacts export`)."
        )
    if len(lines) < 4:
        raise ExportFileError("This contacts export is truncated: its header is incomplete.")
    slug = _field(lines[1], "petition", 2)
    petition_id = _field(lines[2], "petition-id", 3)
    if not _ID.fullmatch(petition_id):
        raise ExportFileError("This contacts export is damaged: its petition id is malformed.")
    count_text = _field(lines[3], "count", 4)
    if not count_text.isdigit():
        raise ExportFileError("This contacts export is damaged: its count is not a number.")
    body = lines[4:]
    if len(body) != int(count_text):
        raise ExportFileError(
            f"This contacts export is truncated or damaged: it says {count_text} contacts "
            f"but holds {len(body)}."
        )
    sealed = []
    for lineno, line in enumerate(body, start=5):
        try:
            sealed.append(base64.b64decode(line, validate=True))
        except (binascii.Error, ValueError):
            raise ExportFileError(f"Line {lineno} of the contacts export is damaged.") from None
    return ContactsExport(slug=slug, petition_id=petition_id, sealed=tuple(sealed))
