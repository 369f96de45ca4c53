"""The delivery document: text drawn from the PDF holds the count, the root and the
verification address in each language; the QR code decodes to that address; its fonts
cover Turkmen and Russian; it holds nothing of any signer.

pdftotext and pdftoppm (poppler-utils) read the PDF, zbarimg (zbar-tools) reads the QR
code from the rendered page: tools this project did not write, installed by .ci/run;
without them the test is skipped with the reason. The first page's rendering is kept as
test-artifacts/certificate-page-1.png.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from fontTools.ttLib import TTFont

from anonsign.certificate import FONTS
from anonsign.cli import main
from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import PetitionText
from anonsign.onion import v3_onion_address
from anonsign.service import Service
from tests.conftest import add_pending, make_petition
from tests.witnesses import MakeWitness, witnessed_by

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ONION = v3_onion_address(bytes(range(32)))
ADDRESS = f"http://{ONION}/p/free-press"

TURKMEN = "ÇçÄäŽžŇňÖöŞşÜüÝý"
RUSSIAN = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя"


def _tools() -> None:
    missing = [t for t in ("pdftotext", "pdftoppm", "zbarimg") if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (apt-get install poppler-utils zbar-tools)"
        print(f"certificate test skipped: {reason}")
        pytest.skip(reason)


def test_every_font_has_every_turkmen_and_russian_letter() -> None:
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf"):
        cmap = TTFont(FONTS / name).getBestCmap()
        assert [c for c in TURKMEN + RUSSIAN if ord(c) not in cmap] == [], name


def test_the_certificate_states_the_count_root_and_address_in_each_language(
    settings: Settings,
    service: Service,
    organizer: OrganizerSecretKey,
    make_witness: MakeWitness,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _tools()
    petition = make_petition(
        service,
        organizer,
        "free-press",
        IdentifierKind.TEXT,
        title="Free the press",
        text="We ask for the release of **every** jailed journalist.",
        translations=[
            PetitionText("ru", "Свободу прессе", "Мы просим освободить всех журналистов."),
            PetitionText("tk", "Metbugata azatlyk", "Ähli žurnalistleri boşatmagy soraýarys."),
        ],
    )
    w1 = make_witness("witness.example.org/w1")
    witnessed_by(service, w1, origins=[petition.log_origin])
    entries = [os.urandom(32) for _ in range(1551)]
    add_pending(service, petition.id, entries, contacts=3)
    service.publish("free-press")
    service.close("free-press")
    service.witness("free-press")
    checkpoint = service.checkpoint("free-press")
    root = checkpoint.note.splitlines()[2]

    for name, value in {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_ONION_ADDRESS": ONION,
        "ANONSIGN_SITE_NAME": settings.site_name,
    }.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "certificate.pdf"
    result = CliRunner().invoke(main, ["petition", "certificate", "free-press", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1,551 signatures, final; cosigned by witness.example.org/w1; in en, ru, tk" in (
        result.output
    )

    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    # Each language's part starts with the site's name and the document's title.
    flat = " ".join(text.split())
    parts = flat.split(f"{settings.site_name} · ")[1:]
    assert len(parts) == 3, parts
    for part, words in zip(
        parts,
        [
            ("Certificate of the count", "Free the press", "1551 signatures", "final count"),
            ("Свидетельство о числе подписей", "Свободу прессе", "1551 подпись", "закрыта"),
            ("Gol çekenleriň sanynyň şahadatnamasy", "Metbugata azatlyk", "1551 adam gol çekdi"),
        ],
        strict=True,
    ):
        for word in words:
            assert word in part, (word, part[:600])
        assert root in part
        assert f"{ADDRESS}/audit" in part
        assert "witness.example.org/w1" in part
    assert "Ähli žurnalistleri boşatmagy soraýarys." in parts[2]
    # The last page: the note as served, the witness's cosignature line included.
    assert checkpoint.note.splitlines()[-1][:60] in flat
    cosignature = service.served_checkpoint("free-press").note.splitlines()[-1]
    assert cosignature.startswith("— witness.example.org/w1 ")
    assert cosignature[:60] in flat

    # Nothing of any signer: no log entry, in any encoding the PDF could carry.
    raw = out.read_bytes()
    for entry in entries[:50]:
        for form in (entry, entry.hex().encode(), base64.b64encode(entry)):
            assert form not in raw
            assert form.decode("latin-1") not in text
    assert b"/Author" not in raw

    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", "-singlefile", str(out),
         str(ARTIFACTS / "certificate-page-1")],
        check=True,
    )  # fmt: skip
    png = ARTIFACTS / "certificate-page-1.png"
    decoded = subprocess.run(
        ["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, check=False
    )
    assert decoded.stdout.strip() == f"{ADDRESS}/audit", decoded


def test_without_an_address_the_command_says_what_to_give(
    settings: Settings, service: Service, organizer: OrganizerSecretKey, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    make_petition(service, organizer, "free-press", IdentifierKind.TEXT)
    monkeypatch.setenv("ANONSIGN_INSTANCE", str(settings.instance_path))
    monkeypatch.setenv("ANONSIGN_DATABASE_URL", settings.database_url)
    monkeypatch.delenv("ANONSIGN_ONION_ADDRESS", raising=False)
    out = tmp_path / "c.pdf"
    runner = CliRunner()
    missing = runner.invoke(main, ["petition", "certificate", "free-press", "--out", str(out)])
    assert missing.exit_code == 1
    assert "Give the petition's public address with --url" in missing.output
    wrong = runner.invoke(
        main, ["petition", "certificate", "free-press", "--out", str(out), "--url",
               f"http://{ONION}/p/other"],
    )  # fmt: skip
    assert wrong.exit_code == 1
    assert "--url names the petition 'other', not 'free-press'" in wrong.output
    unknown = runner.invoke(
        main, ["petition", "certificate", "free-press", "--out", str(out), "--url", ADDRESS,
               "--lang", "fr"],
    )  # fmt: skip
    assert unknown.exit_code == 1
    assert "No language 'fr'" in unknown.output
    assert not out.exists()
