"""anonsign: a petition service that proves its count and keeps nothing that identifies a signer.

The package is split by what each part may know (see docs/architecture in README):
``domain`` has the rules and no I/O, ``crypto`` the only calls into pyca/cryptography and
argon2-cffi, ``storage`` the only SQL, ``web`` the only HTTP, ``cli`` the only terminal,
and ``audit`` verifies a published log with nothing but the standard library and
cryptography, so an auditor needs neither Flask, SQLAlchemy nor any key.
"""

__version__ = "0.1.0"
