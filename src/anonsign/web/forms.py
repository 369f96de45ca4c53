"""The sign form. Flask-WTF supplies the CSRF token; the rules live in ``domain``."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField


class SignForm(FlaskForm):  # type: ignore[misc]
    identifier = StringField()
    contact = TextAreaField()
    consent = BooleanField()
