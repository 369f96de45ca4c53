"""The WSGI application, for running gunicorn directly: ``anonsign.wsgi:app``.

``anonsign serve`` is the usual way to run anonsign; ``deploy/gunicorn.conf.py`` names
this module instead. Importing it reads the ``ANONSIGN_*`` settings, sends every log
record through the privacy filter and builds the app, exactly as ``serve`` does in each
worker (:func:`anonsign.cli.gunicorn_app.load_app`). Never serve it with a development
server: Werkzeug's prints every client's request line.
"""

from __future__ import annotations

from flask import Flask

from anonsign.cli.gunicorn_app import load_app

app: Flask = load_app()
