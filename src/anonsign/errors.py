"""One error base for everything a person may be told.

Each error's docstring is the message a person reads when nothing more specific is
given; ``str(error)`` is always one sentence that says what happened and, where there
is something to do, what to do next. The CLI maps every :class:`AnonsignError` to a
single ``ERROR: ...`` line and a non-zero exit, and the web layer to a 4xx page, so
no caller ever shows a traceback for a condition this module names.
"""

from __future__ import annotations


class AnonsignError(Exception):
    """Something went wrong."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or " ".join((self.__doc__ or "").split()))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(AnonsignError):
    """The configuration is invalid; check the ANONSIGN_* environment variables."""


class NotInitialized(AnonsignError):
    """This instance is not initialized yet; run `anonsign init` first."""


# --- keys and sealed contacts (offline side) ---------------------------------------------


class KeyFileError(AnonsignError):
    """This is not an anonsign key file, or it is damaged."""


class WrongPassphrase(AnonsignError):
    """Wrong passphrase for this key file (or the file was altered)."""


class WeakKeyFile(KeyFileError):
    """This key file's passphrase protection is weaker than anonsign allows; make a new key."""


class InvalidKeyName(AnonsignError):
    """A key name must start with a letter or digit and use at most 64 letters, digits,
    dots, dashes or underscores."""


class EmptyPassphrase(AnonsignError):
    """The passphrase is empty; choose one (a few random words make a good passphrase)."""


class KeyDerivationFailed(AnonsignError):
    """There is not enough free memory to derive the key from the passphrase; close other
    programs and try again."""


class SealedContactError(AnonsignError):
    """This sealed contact is damaged or is not an anonsign sealed contact."""


class NotSealedToThisKey(SealedContactError):
    """This contact was not sealed to the given key; try another organizer key."""


class ContactDamaged(SealedContactError):
    """This contact is damaged: its bytes were altered or corrupted on the way. Export the
    contacts again from the server."""


class ContactDoesNotOpen(ContactDamaged):
    """This contact is damaged: it names the given key but does not open with it for this
    petition (its bytes were altered, or it belongs to another petition)."""


class ExportFileError(AnonsignError):
    """This is not an anonsign contacts export, or it is damaged."""


# --- server secrets ---------------------------------------------------------------------


class MasterKeyMismatch(AnonsignError):
    """The server master key does not open this petition's secret: is ANONSIGN_INSTANCE
    pointing at the right instance folder?"""


# --- signer input (messages shown on the web page) ----------------------------------------


class InvalidInput(AnonsignError):
    """Please check what you entered and try again."""


class InvalidIdentifier(InvalidInput):
    """This does not look valid; please check it and try again."""


class ContactTooLong(InvalidInput):
    """The contact is too long; please shorten it."""


class InvalidContact(InvalidInput):
    """The contact contains invisible or control characters; please type it again by hand."""


class InvalidRegion(ConfigError):
    """This is not a phone region anonsign knows; use a two-letter country code such as TM."""


# --- petitions ----------------------------------------------------------------------------


class PetitionNotFound(AnonsignError):
    """No petition has this name; check the spelling, or run `anonsign petition list`."""


class PetitionExists(AnonsignError):
    """A petition with this name already exists; choose another name."""


class PetitionClosed(AnonsignError):
    """This petition is closed and no longer accepts signatures."""


class PepperUnavailable(AnonsignError):
    """This petition's secret is gone (it was closed), so no signature can be checked against it."""


# --- the public log (audit) ---------------------------------------------------------------


class MerkleError(AnonsignError):
    """This log proof does not check out; the log was altered or the proof is for another tree."""


# --- calibration (anonsign calibrate) ------------------------------------------------------


class CalibrationError(AnonsignError):
    """No Argon2id cost at or above OWASP's minimum fits this memory budget; raise
    --memory-budget-mib or run fewer workers."""
