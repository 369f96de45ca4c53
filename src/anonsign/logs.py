"""Logging that cannot carry who signed.

No access log exists anywhere (``serve`` turns gunicorn's off; Werkzeug's development
server is never used). As a second line of defence, every record that reaches a
handler installed here passes :class:`PrivacyFilter`, which drops Werkzeug's request
lines and masks anything shaped like an address, an email or a phone number, so that an
unexpected error message quoting input still cannot write it to disk.
"""

from __future__ import annotations

import logging
import re
import sys

REDACTED = "[redacted]"

_PATTERNS = (
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),  # IPv4
    re.compile(r"\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}\b"),  # IPv6
    re.compile(r"[^\s@<>\"']+@[^\s@<>\"']+"),  # email-like
    re.compile(r"\+?\d[\d\s().-]{6,}\d"),  # phone-like runs of digits
)


def scrub(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class PrivacyFilter(logging.Filter):
    """Drop request logs; mask addresses, emails and numbers in everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(("werkzeug", "gunicorn.access")):
            return False
        message = scrub(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info:
            # Keep the exception's type and place, not its message (it may quote input).
            exc_type = record.exc_info[0]
            record.msg = f"{message} ({exc_type.__name__ if exc_type else 'error'})"
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: int = logging.WARNING) -> None:
    """Send anonsign's and gunicorn's error logs to stderr through the filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PrivacyFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("werkzeug", "gunicorn.access"):
        logging.getLogger(name).disabled = True
