"""The delivery document: a PDF that hands a petition's count to its addressee.

``anonsign petition certificate SLUG --out FILE.pdf`` writes, for each language asked (by
default English and every language the petition has a version in), a page with the
petition's title and text, the signed count, the checkpoint (origin, size, root), the
log key's verifier key and key ID, the witnesses that cosigned it, a QR code of the
address where anyone can check it, and the commands that do. A last page holds the
served checkpoint note whole, signatures included, for anyone who wants to check it by
hand.

It holds only what the public log endpoints publish: no entry of the log, no contact,
no time but the day of the batch. The PDF's metadata names no author and carries that
day as its date, never the moment it was made. Fonts are embedded (anonsign/fonts:
DejaVu, every Turkmen and Cyrillic letter), so it prints the same anywhere; the PDF is
written by fpdf2 and the QR code drawn by segno.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from babel.support import Translations

from anonsign.audit.checkpoint import Checkpoint
from anonsign.crypto.cosign import CosignatureVerifier
from anonsign.crypto.notes import NoteVerifier
from anonsign.domain.messages import N_
from anonsign.domain.petitions import LANGUAGES, Petition
from anonsign.errors import AnonsignError

__all__ = ["CertificateError", "CertificateFacts", "write_certificate"]

FONTS = Path(__file__).parent / "fonts"
TRANSLATIONS = Path(__file__).parent / "web" / "translations"

# The page's own words; the rest are the audit page's, already translated.
TITLE = N_("Certificate of the count")
FINAL = N_("The final count: the petition is closed.")
SO_FAR = N_("The count so far: the petition is still open.")
WITNESSES = N_("Witnesses")
COSIGNED = N_(
    "Cosigned by these witnesses: each saw no other version of this log, and would refuse "
    "to cosign one."
)
NOT_COSIGNED = N_("No witness has cosigned this checkpoint yet.")
SCAN = N_("Scan to open the page that checks the count:")
TILES = N_(
    "Any tlog-tiles client (such as Go's golang.org/x/mod/sumdb/tlog) can read the log "
    "itself at this address:"
)
WHOLE_NOTE = N_("The checkpoint as the server serves it, with every signature")


class CertificateError(AnonsignError):
    """The certificate cannot be made; the message says what is missing."""


@dataclass(frozen=True)
class Witness:
    name: str
    key_id: str
    #: Its verifier key, when the server is configured with it (ANONSIGN_WITNESSES_FILE).
    verifier_key: str | None = None


@dataclass(frozen=True)
class CertificateFacts:
    """Everything the document states, all of it public."""

    petition: Petition
    closed: bool
    checkpoint: Checkpoint
    #: The served note: the log's signature, then the witnesses' cosignatures.
    note: str
    published_day: str
    verifier_key: str
    witnesses: tuple[Witness, ...]
    #: The petition's address (``.../p/<slug>``), where the log and its proofs are.
    address: str
    site_name: str

    @property
    def audit_address(self) -> str:
        return f"{self.address}/audit"


def facts_from_note(
    petition: Petition,
    note: str,
    *,
    published_hour: int,
    verifier_key: str,
    address: str,
    site_name: str,
    witness_keys: dict[bytes, str] | None = None,
) -> CertificateFacts:
    """What the document will say, checked: the note opens with the log's key, and a
    witness whose key is given (by key ID) is named only if its cosignature verifies."""
    verifier = NoteVerifier.from_verifier_key(verifier_key)
    checkpoint = Checkpoint.parse(verifier.open(note))
    keys = witness_keys or {}
    witnesses = []
    for signature in verifier.others_in(note):
        key = keys.get(signature.key_id)
        if key is not None:
            CosignatureVerifier.from_verifier_key(key).timestamp_in(note)
        witnesses.append(Witness(signature.name, signature.key_id.hex(), key))
    day = datetime.fromtimestamp(published_hour * 3600, UTC).date().isoformat()
    return CertificateFacts(
        petition=petition,
        closed=not petition.is_open,
        checkpoint=checkpoint,
        note=note,
        published_day=day,
        verifier_key=verifier.verifier_key(),
        witnesses=tuple(witnesses),
        address=address.rstrip("/"),
        site_name=site_name,
    )


def _qr_png(address: str) -> io.BytesIO:
    import segno

    buffer = io.BytesIO()
    segno.make(address, error="m").save(buffer, kind="png", scale=8, border=4)
    buffer.seek(0)
    return buffer


class _Document:
    """One fpdf2 document with the embedded fonts and the few styles the pages use."""

    def __init__(self, facts: CertificateFacts) -> None:
        from fpdf import FPDF

        self.facts = facts
        pdf = FPDF(format="A4")
        pdf.set_auto_page_break(auto=True, margin=14)
        pdf.set_margins(16, 14, 16)
        pdf.add_font("Sans", "", str(FONTS / "DejaVuSans.ttf"))
        pdf.add_font("Sans", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        pdf.add_font("Mono", "", str(FONTS / "DejaVuSansMono.ttf"))
        pdf.set_title(f"{facts.petition.title}: {facts.checkpoint.size}")
        pdf.set_creator("anonsign")
        pdf.set_producer("anonsign")
        day = datetime.fromisoformat(facts.published_day).replace(tzinfo=UTC)
        pdf.set_creation_date(day)
        self.pdf = pdf

    def heading(self, text: str, size: float = 12) -> None:
        self.pdf.ln(2)
        self.pdf.set_font("Sans", "B", size)
        self.pdf.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1)

    def text(self, text: str, size: float = 10) -> None:
        self.pdf.set_font("Sans", "", size)
        self.pdf.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def mono(self, text: str, size: float = 8.5) -> None:
        self.pdf.set_font("Mono", "", size)
        self.pdf.set_fill_color(242, 242, 242)
        # Left-aligned, never justified: a command must read as it is typed.
        self.pdf.multi_cell(
            0, size * 0.5, text, fill=True, align="L", new_x="LMARGIN", new_y="NEXT"
        )
        self.pdf.ln(1)

    def page(self, lang: str) -> None:
        facts = self.facts
        translations = Translations.load(str(TRANSLATIONS), [lang])
        _ = translations.gettext
        petition = facts.petition.in_language(lang)
        size = facts.checkpoint.size
        pdf = self.pdf
        pdf.add_page()

        self.text(f"{facts.site_name} · {_(TITLE)}", 9)
        self.heading(petition.title, 17)
        self.text(_plain(petition.text))

        self.heading(translations.ngettext("%(num)d signature", "%(num)d signatures", size)
                     % {"num": size}, 20)  # fmt: skip
        self.text(_(FINAL) if facts.closed else _(SO_FAR))
        self.text(_("Counted on %(date)s.") % {"date": facts.published_day})

        self.heading(_("The latest checkpoint"))
        self.text(_("The number of entries and their root hash, signed with the server's key."))
        self.mono(facts.checkpoint.to_text().rstrip("\n"))

        self.heading(_("The server's key"))
        self.text(
            _(
                "Get it from the organizers too, not only from this site: a server that lied "
                "about the count could show a false key as well."
            )
        )
        self.mono(facts.verifier_key)

        self.heading(_(WITNESSES))
        if facts.witnesses:
            self.text(_(COSIGNED))
            self.mono(
                "\n".join(
                    w.verifier_key or f"{w.name}  (key ID {w.key_id})" for w in facts.witnesses
                )
            )
        else:
            self.text(_(NOT_COSIGNED))

        self.heading(_("Check it yourself"))
        top = pdf.get_y()
        self.text(_(SCAN))
        self.mono(facts.audit_address)
        qr_size = 34
        if pdf.get_y() + qr_size > pdf.h - pdf.b_margin:
            pdf.add_page()
        pdf.image(_qr_png(facts.audit_address), x=pdf.l_margin, y=max(top, pdf.get_y()),
                  w=qr_size, h=qr_size)  # fmt: skip
        pdf.set_y(max(top, pdf.get_y()) + qr_size + 2)
        self.text(
            _("With the anonsign program on your own computer, save the key as %(file)s and run:")
            % {"file": "server.vkey"}
        )
        witnesses = "".join(f" --witness {_key_file(w.name)}" for w in facts.witnesses)
        self.mono(f"anonsign audit verify {facts.address} --key server.vkey{witnesses}")
        self.text(
            _(
                "This downloads the log from this site and checks that the key signed it, that "
                "no entry appears twice, and that the entries match the signed count and root "
                "hash."
            )
        )
        self.text(_(TILES))
        self.mono(f"{facts.address}/checkpoint\n{facts.address}/tile/")
        self.text(_("To reach an .onion address, run the commands through torsocks."))
        self.text(
            _(
                "What this cannot prove: that each entry is a different person. It proves "
                "that no email address, phone number or ID number was counted twice."
            )
        )

    def note_page(self, languages: list[str]) -> None:
        self.pdf.add_page()
        titles = {Translations.load(str(TRANSLATIONS), [lang]).gettext(WHOLE_NOTE)
                  for lang in languages}  # fmt: skip
        self.heading(" / ".join(sorted(titles)))
        self.mono(self.facts.note.rstrip("\n"), 7)


def _key_file(name: str) -> str:
    """A file name for a witness's key in the printed command: its name, made a file's."""
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name) + ".vkey"


def _plain(text: str) -> str:
    """The petition's text without its Markdown emphasis marks (the PDF prints words)."""
    return text.replace("**", "").replace("__", "")


def languages_of(petition: Petition, asked: list[str] | None) -> list[str]:
    """The languages to print: those asked, else English and each translation's."""
    if asked:
        unknown = [lang for lang in asked if lang not in LANGUAGES]
        if unknown:
            raise CertificateError(
                f"No language {unknown[0]!r}: the certificate can be in {', '.join(LANGUAGES)}."
            )
        return list(dict.fromkeys(asked))
    have = {t.lang for t in petition.translations}
    return [lang for lang in LANGUAGES if lang == "en" or lang in have]


def write_certificate(facts: CertificateFacts, out: Path, languages: list[str]) -> Path:
    """Write the document for ``languages`` to ``out`` (replaced whole, never half)."""
    document = _Document(facts)
    for lang in languages:
        document.page(lang)
    document.note_page(languages)
    data = bytes(document.pdf.output())
    partial = out.with_name(f".{out.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CertificateError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    return out
