"""The sign form. Flask-WTF supplies the CSRF token; the rules live in ``domain``.

Two fields are for the server, not the signer: ``form_token`` (one rendering of the form,
accepted once; web.form_guard) and ``website``, a honeypot that a person never sees and
leaves empty.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField, TextAreaField


class SignForm(FlaskForm):  # type: ignore[misc]
    identifier = StringField()
    contact = TextAreaField()
    consent = BooleanField()
    form_token = HiddenField()
    website = StringField()
