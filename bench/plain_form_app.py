"""The comparison point of bench/privacy_cost.py: a petition form with no privacy at all.

What a petition site is without anonsign's protections: Flask and SQLAlchemy on SQLite,
a page with a form, and a post that stores the email address in clear with the time it
came (a unique index folds repeats). No Argon2id, no sealing, no form token, no limiter,
no encryption at rest. Served by gunicorn's threaded worker, as anonsign is.

Not part of anonsign: it exists only to be measured against.
"""

from __future__ import annotations

import os
import time

from flask import Flask, request
from sqlalchemy import Column, Float, Integer, String, create_engine, event
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


class Signature(Base):
    __tablename__ = "signatures"
    id = Column(Integer, primary_key=True)
    email = Column(String, unique=True, nullable=False)
    signed_at = Column(Float, nullable=False)


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Petition</title>
</head><body><h1>A petition</h1><p>{count} people have signed.</p>
<form method="post" action="/sign"><label>Email <input name="email" type="email"></label>
<button>Sign</button></form></body></html>"""

engine = create_engine(f"sqlite:///{os.environ['PLAIN_FORM_DB']}")


@event.listens_for(engine, "connect")
def _durable(connection: object, _record: object) -> None:
    # The same durability as anonsign's SQLite store: WAL, synced at every commit.
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


Base.metadata.create_all(engine)
app = Flask(__name__)


@app.get("/")
def page() -> str:
    with Session(engine) as session:
        count = session.query(Signature).count()
    return PAGE.format(count=count)


@app.post("/sign")
def sign() -> tuple[str, int]:
    email = (request.form.get("email") or "").strip().lower()
    if "@" not in email:
        return "Please give an email address.", 400
    with Session(engine) as session, session.begin():
        session.execute(
            insert(Signature)
            .values(email=email, signed_at=time.time())
            .on_conflict_do_nothing(index_elements=["email"])
        )
    return "<!doctype html><p>Thank you for signing.</p>", 200
