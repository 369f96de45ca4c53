"""Witnesses (C2SP tlog-witness): a third party that cosigns a petition log's checkpoints
only when each extends the last one it saw, so that a server cannot show one count to an
auditor and another to the addressee (a split view) without the witness refusing.

``protocol`` is the add-checkpoint request and its answers (both sides), ``state`` the
witness's own record of the latest size per log, ``service`` the witness's checks,
``app`` its HTTP face, and ``client`` the log's side: offering each new checkpoint to
the configured witnesses and keeping what they cosign.
"""
