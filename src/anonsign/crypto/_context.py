"""How a petition id is bound into associated data and HPKE ``info``.

This private module owns one encoding, ``label || 0x00 || petition_id (UTF-8)``, so
``master``, ``seal`` and ``unseal`` cannot drift apart on it. It must not hold labels
(they live in ``labels``) or do any cryptography.
"""

from __future__ import annotations


def petition_id_bytes(petition_id: str) -> bytes:
    """The UTF-8 bytes of a petition id, refusing ids that would make contexts ambiguous.

    An empty id would bind nothing, and a NUL byte is the separator, so an id containing
    one could make two different (petition id, header) pairs encode to the same bytes.
    Petition ids are chosen by the domain layer, so either is a programming error.
    """
    if not petition_id:
        raise ValueError("petition id must not be empty")
    if "\x00" in petition_id:
        raise ValueError("petition id must not contain NUL")
    return petition_id.encode("utf-8")


def petition_context(label: bytes, petition_id: str) -> bytes:
    """``label || 0x00 || petition_id``: the label names the purpose, the id the petition."""
    return label + b"\x00" + petition_id_bytes(petition_id)
