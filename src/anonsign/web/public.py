"""The pages a signer sees: the list of petitions, a petition with its form, the answer.

The answer to a signature is the same page, byte for byte apart from the CSRF token it
does not even carry, whether the identifier is new or has signed before (SECURITY.md,
"no membership oracle"). It shows nothing derived from the identifier either: whoever
submits an identifier, the state included, would get it, and could look it up in the
public log (SECURITY.md, "why there are no receipts").
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_wtf.csrf import CSRFProtect

from anonsign.crypto.notes import NoteVerifier
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import Petition
from anonsign.errors import ContactTooLong, InvalidInput
from anonsign.service import Service
from anonsign.stats import Outcome
from anonsign.storage.log_store import StoredCheckpoint
from anonsign.web import capacity, form_guard
from anonsign.web.errors import error_page, form_rejected
from anonsign.web.form_guard import FORM_REFUSED, accept_sign_form, issue_form_token
from anonsign.web.forms import SignForm
from anonsign.web.i18n import select_locale
from anonsign.web.markup import render_petition_text
from anonsign.web.stats import sign_stats

bp = Blueprint("public", __name__)
csrf = CSRFProtect()

# Lazy: defined at import, translated into the locale of the request that shows them.
CONSENT_MISSING = lazy_gettext("Please tick the box to confirm that you want to sign.")

# crypto.seal's own message names byte counts, which mean nothing to a signer.
CONTACT_TOO_LONG = lazy_gettext("Your contact details are too long; please shorten them.")

# (label, placeholder, input type); the placeholders are examples, the same in every language.
IDENTIFIER_LABELS = {
    IdentifierKind.EMAIL: (lazy_gettext("Your email address"), "name@example.org", "email"),
    IdentifierKind.PHONE: (
        lazy_gettext("Your phone number, with country code"),
        "+993 65 123456",
        "tel",
    ),
    IdentifierKind.TEXT: (lazy_gettext("Your ID number"), "", "text"),
}


def service() -> Service:
    svc: Service = current_app.extensions["anonsign.service"]
    return svc


def petition_for(slug: str) -> Petition:
    """The petition ``slug`` names, read once per request (untranslated).

    A sign post needs it in the per-petition rate limit, the view, the form check and the
    signature; each read is three queries and a check of every organizer key, so the
    request keeps the first. Never kept across requests: a page shows the petition as it
    is now, and the signature's insert checks the state again under the row lock.
    """
    cache: dict[str, Petition] = g.setdefault("anonsign_petitions", {})
    petition = cache.get(slug)
    if petition is None:
        petition = cache[slug] = service().petition(slug)
    return petition


def signer_message(error: InvalidInput) -> str:
    """What the signer reads for refused input, in the page's language.

    The domain's messages are constant msgids marked with ``N_`` (anonsign.domain.messages)
    and are translated here, at render time; one it does not know stays in English.
    """
    if isinstance(error, ContactTooLong):
        return str(CONTACT_TOO_LONG)
    return str(gettext(error.message))


def _foreign_origin() -> bool:
    """True when the browser says the form was posted from another site.

    The CSRF token already binds the post to our cookie; this refuses a cross-site post
    early. An absent Origin or ``null`` (some privacy settings send it) is left to the
    token check.
    """
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        # An unclosed IPv6 bracket ("http://["): no browser sends it, and it used to
        # escape as a 500 to anyone holding a valid token. Refused like a foreign site.
        return True
    return netloc != request.host


def _published_day(checkpoint: StoredCheckpoint) -> str:
    """The day the count was published; a page names no hour."""
    return datetime.fromtimestamp(checkpoint.published_hour * 3600, UTC).date().isoformat()


def _render_petition(
    petition: Petition, form: SignForm, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    label, placeholder, input_type = IDENTIFIER_LABELS[petition.identifier_kind]
    checkpoint = service().checkpoint_of(petition)
    published = _published_day(checkpoint)
    return (
        render_template(
            "public/petition.html",
            petition=petition,
            count=checkpoint.size,
            published=published,
            text=render_petition_text(petition.text),
            form=form,
            # A fresh token on every rendering, refusals included (web.form_guard).
            form_token=issue_form_token(petition) if petition.is_open else "",
            error=error,
            identifier_label=str(label),
            identifier_placeholder=placeholder,
            identifier_type=input_type,
        ),
        status,
    )


@bp.get("/")
def index() -> str:
    lang = select_locale()
    petitions = [p.in_language(lang) for p in service().petitions(open_only=True)]
    return render_template("public/index.html", petitions=petitions)


@bp.get("/p/<slug>")
def petition(slug: str) -> tuple[str, int]:
    return _render_petition(petition_for(slug).in_language(select_locale()), SignForm())


@bp.post("/p/<slug>/sign")
def sign(slug: str) -> tuple[str, int]:
    if _foreign_origin():
        return form_rejected()
    petition = petition_for(slug).in_language(select_locale())
    if not petition.is_open:
        return error_page(410)
    form = SignForm()
    # A hashing turn first (or 503 at once when every slot and queue place is taken,
    # web.capacity): a shed post has spent nothing, and its form stays valid.
    try:
        with capacity.gate().turn():
            return _sign(petition, form)
    except capacity.HashingBusy:
        # Counted here, where the petition is known to exist (web.stats).
        sign_stats().count(petition.slug, Outcome.SHED)
        raise


def _sign(petition: Petition, form: SignForm) -> tuple[str, int]:
    # Before the identifier is read: a replayed, scripted, too quick or stale form costs
    # no hashing and moves no count, and the token is spent whatever the identifier is.
    if not accept_sign_form(petition, form):
        return _render_petition(petition, form, str(FORM_REFUSED), 400)
    if not form.consent.data:
        return _render_petition(petition, form, str(CONSENT_MISSING), 400)
    try:
        # The log entry sign() returns stays here: on a page it would be a receipt, and a
        # receipt is a membership oracle for whoever submits the identifier.
        service().sign(
            petition.slug, form.identifier.data or "", form.contact.data or "", petition=petition
        )
    except InvalidInput as exc:
        return _render_petition(petition, form, signer_message(exc), 400)
    # After the commit, so only a signature the store holds is counted (anonsign.stats).
    sign_stats().count(petition.slug, Outcome.ACCEPTED)
    return render_template("public/thanks.html", petition=petition), 200


@bp.get("/p/<slug>/audit")
def audit(slug: str) -> str:
    """The auditor's page: the checkpoint, the key and the commands that check the count.

    Linked from the count on the petition page, so that a signer's page keeps one line
    about it and the form near the top. It shows only what the log endpoints publish.
    """
    petition = petition_for(slug).in_language(select_locale())
    # As /p/<slug>/checkpoint serves it: the log's signature, then the cosignatures.
    checkpoint = service().served_checkpoint_of(petition)
    verifier_key = service().verifier_key()
    log_key = NoteVerifier.from_verifier_key(verifier_key)
    witnesses = [signature.name for signature in log_key.others_in(checkpoint.note)]
    return render_template(
        "public/audit.html",
        petition=petition,
        count=checkpoint.size,
        published=_published_day(checkpoint),
        checkpoint_note=checkpoint.note,
        witnesses=witnesses,
        verifier_key=verifier_key,
        # The address the reader used (the onion, or a mirror): `verify` fetches from it.
        petition_url=url_for("public.petition", slug=petition.slug, _external=True),
    )


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    form_guard.init_app(app)
    capacity.init_app(app)
    app.register_blueprint(bp)
