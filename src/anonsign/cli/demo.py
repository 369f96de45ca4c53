"""The demo: an instance with one petition and a demo organizer key, for trying anonsign.

Everything here is for a single computer. The demo key's passphrase is public (it is
printed, and written beside the key), which is exactly why it must never be used for a
real petition.
"""

from __future__ import annotations

from pathlib import Path

from anonsign.config import Settings

DEMO_SLUG = "demo"
DEMO_KEY_NAME = "demo-organizer"
DEMO_PASSPHRASE = "demo passphrase, not secret"  # noqa: S105 - deliberately public

DEMO_BANNER = f"""
  **************************************************************************
  *  DEMO INSTANCE. Not for real signatures.
  *  The demo organizer key and its passphrase are in the instance folder,
  *  so anyone who can read that folder can open the demo contacts.
  *  Demo passphrase: {DEMO_PASSPHRASE}
  **************************************************************************
"""

DEMO_TEXT = """\
This is a **demonstration petition** running on your own computer.

Try signing it with a phone number from Turkmenistan, such as `+993 65 123456`, or
the same number written another way (`00993 65 12 34 56`, `8 65 123456`): it is counted
once. Whatever you type is never stored: the server keeps only a one-way code that
cannot be turned back into your number.

If you leave a way to contact you, it is sealed so that only the organizer's offline
key can open it. To see that, type these in the folder where you ran `make run`
(the first puts the `anonsign` command on your PATH):

    source .venv/bin/activate
    anonsign contacts export demo \\
        --out demo-contacts.txt
    anonsign contacts decrypt \\
        demo-contacts.txt --key \\
        instance/demo/demo-organizer.key

and give the demo passphrase printed when the demo started.
"""

#: The widest line a code block of the demo text may have: a 360-pixel phone screen holds
#: about this many characters of the page's code font, so the block never scrolls sideways.
DEMO_CODE_WIDTH = 36


DEMO_TRANSLATIONS = {
    "ru": (
        "Демо: подпишите, не раскрывая себя",
        """\
Это **демонстрационная петиция**, запущенная на вашем компьютере.

Попробуйте подписать её номером телефона из Туркменистана, например `+993 65 123456`,
или тем же номером, записанным иначе (`00993 65 12 34 56`, `8 65 123456`): он будет
учтён один раз. То, что вы вводите, никогда не сохраняется: сервер хранит только
односторонний код, из которого нельзя восстановить ваш номер.

Если вы оставите способ связи, он будет зашифрован так, что открыть его сможет только
ключ организатора, который хранится на компьютере без доступа к интернету.
""",
    ),
    "tk": (
        "Demo: adyňyzy aýan etmezden gol çekiň",
        """\
Bu siziň kompýuteriňizde işleýän **görkezme petisiýasydyr**.

Oňa Türkmenistanyň telefon belgisi bilen gol çekip görüň, meselem `+993 65 123456`,
ýa-da şol belgini başgaça ýazyp görüň (`00993 65 12 34 56`, `8 65 123456`): ol diňe
bir gezek hasaba alnar. Siziň ýazan zadyňyz hiç haçan saklanmaýar: serwer diňe yzyna
öwrüp bolmaýan kody saklaýar.

Eger siz bilen habarlaşmagyň ýoluny galdyrsaňyz, ol şifrlenýär we ony diňe internete
birikdirilmedik kompýuterdäki guramaçynyň açary açyp biler.
""",
    ),
}


def demo_key_dir(settings: Settings) -> Path:
    return settings.instance_path / "demo"


def set_up_demo(settings: Settings) -> list[str]:
    """Initialize the instance, make the demo key and petition if missing; say what was done."""
    from anonsign.crypto.keyfile import OrganizerSecretKey, encrypt_secret_key
    from anonsign.crypto.keys import load_public_key
    from anonsign.domain.identifiers import IdentifierKind
    from anonsign.domain.petitions import Recipient, validate_translation
    from anonsign.errors import PetitionNotFound
    from anonsign.files import write_private_file
    from anonsign.instance import init_instance
    from anonsign.service import Service

    done = [f"created {line}" for line in init_instance(settings, dev=True)]
    key_dir = demo_key_dir(settings)
    pub_path = key_dir / f"{DEMO_KEY_NAME}.pub"
    key_path = key_dir / f"{DEMO_KEY_NAME}.key"
    if not pub_path.exists():
        key = OrganizerSecretKey.generate()
        write_private_file(
            key_path, encrypt_secret_key(key, DEMO_PASSPHRASE, DEMO_KEY_NAME).encode("utf-8")
        )
        write_private_file(
            pub_path, key.public_key().public_key_file_text(DEMO_KEY_NAME).encode("utf-8")
        )
        write_private_file(key_dir / "PASSPHRASE.txt", (DEMO_PASSPHRASE + "\n").encode("utf-8"))
        done.append(f"created demo organizer key {key_path}")

    service = Service.open(settings, migrate=True)
    try:
        try:
            service.petition(DEMO_SLUG)
        except PetitionNotFound:
            service.create_petition(
                slug=DEMO_SLUG,
                title="Demo: sign without being identified",
                text=DEMO_TEXT,
                identifier_kind=IdentifierKind.PHONE,
                phone_region="TM",
                recipients=[Recipient(DEMO_KEY_NAME, load_public_key(pub_path))],
                translations=[
                    validate_translation(lang, title, text)
                    for lang, (title, text) in DEMO_TRANSLATIONS.items()
                ],
            )
            done.append(f"created demo petition /p/{DEMO_SLUG}")
    finally:
        service.close_connections()
    return done
