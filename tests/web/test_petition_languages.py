"""A petition's own title and text in the reader's language, set by the organizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from anonsign.cli import main
from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.petitions import InvalidPetition, validate_translation
from anonsign.service import Service
from tests.conftest import make_petition, sign


@pytest.fixture
def translated(service: Service, organizer: OrganizerSecretKey) -> str:
    make_petition(
        service,
        organizer,
        "three-languages",
        title="Free the press",
        text="Release **every** journalist.",
        translations=[
            validate_translation("ru", "Свободу прессе", "Освободите **всех** журналистов."),
            validate_translation("tk", "Metbugata azatlyk", "Ähli žurnalistleri boşadyň."),
        ],
    )
    return "three-languages"


def test_each_reader_sees_the_petition_in_their_language(
    client: FlaskClient, translated: str
) -> None:
    english = client.get(f"/p/{translated}").get_data(as_text=True)
    assert "Free the press" in english
    russian = client.get(f"/p/{translated}?lang=ru").get_data(as_text=True)
    assert "Свободу прессе" in russian
    assert "<strong>всех</strong>" in russian
    assert "Free the press" not in russian
    assert "Свободу прессе" in client.get("/").get_data(as_text=True)  # remembered
    turkmen = client.get(f"/p/{translated}?lang=tk").get_data(as_text=True)
    assert "Metbugata azatlyk" in turkmen
    thanks = sign(client, translated, "reader@example.org").get_data(as_text=True)
    assert "Metbugata azatlyk" in thanks


def test_without_a_translation_the_original_is_shown(
    client: FlaskClient, service: Service, petition: object
) -> None:
    page = client.get("/p/free-press?lang=tk").get_data(as_text=True)
    assert "Free the press" in page


def test_unknown_language_or_duplicate_translation_is_refused(
    service: Service, organizer: OrganizerSecretKey
) -> None:
    with pytest.raises(InvalidPetition, match="interface language"):
        validate_translation("fr", "Liberté", "Texte.")
    version = validate_translation("ru", "Раз", "Текст.")
    with pytest.raises(InvalidPetition, match="one translation per language"):
        make_petition(service, organizer, "twice", translations=[version, version])


def test_cli_creates_translations(
    tmp_path: Path, settings: Settings, service: Service, organizer: OrganizerSecretKey
) -> None:
    pub = tmp_path / "alice.pub"
    pub.write_text(organizer.public_key().public_key_file_text("alice"))
    for name, body in (("en.md", "Sign."), ("ru.md", "Подпишите."), ("tk.md", "Gol çekiň.")):
        (tmp_path / name).write_text(body, encoding="utf-8")
    env = {"ANONSIGN_INSTANCE": str(settings.instance_path),
           "ANONSIGN_DATABASE_URL": settings.database_url}  # fmt: skip
    args = ["petition", "create", "cli-langs", "--title", "Sign", "--text-file",
            str(tmp_path / "en.md"), "--identifier", "email", "--recipient", str(pub), "--dev",
            "--translation", "ru", "Подпишите", str(tmp_path / "ru.md"),
            "--translation", "tk", "Gol çekiň", str(tmp_path / "tk.md")]  # fmt: skip
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "with a ru version" in result.output
    assert service.petition("cli-langs").in_language("tk").text == "Gol çekiň."
    bad = CliRunner().invoke(
        main, [*args[:-8], "--translation", "de", "Unterschreiben", str(tmp_path / "en.md")],
        env=env,
    )  # fmt: skip
    assert bad.exit_code == 1
    assert "ERROR: No interface language 'de'" in bad.output
