"""The ``anonsign`` command: one entry point for operators, organizers and auditors.

Offline verbs (``keygen``, ``contacts decrypt``) import neither Flask nor SQLAlchemy;
each command imports what it needs when it runs.
"""

from anonsign.cli.main import main

__all__ = ["main"]
