"""``N_``: marks a message a person may read, without translating it here.

The domain knows nothing of Flask or of the reader's language. A message a signer can
see is a module constant wrapped in ``N_``; ``scripts/i18n.py`` collects every
``N_("...")`` into the translation catalog, and the web layer translates the constant
when it renders the page (``gettext(error.message)``). So a marked message must be one
plain string literal, the same for every input: no f-string, no ``%`` or ``format``
afterwards, or it cannot be found in the catalog.
"""

from __future__ import annotations


def N_(message: str) -> str:
    """Return ``message`` unchanged; only the extraction step looks for this name."""
    return message
