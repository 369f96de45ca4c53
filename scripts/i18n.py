#!/usr/bin/env python3
"""Extract, update and compile anonsign's translation catalogs (Babel, in-process).

    .venv/bin/python scripts/i18n.py            # extract + update + compile (the usual run)
    .venv/bin/python scripts/i18n.py extract    # sources -> messages.pot
    .venv/bin/python scripts/i18n.py update     # messages.pot -> every <locale>/messages.po
    .venv/bin/python scripts/i18n.py compile    # every messages.po -> messages.mo
    .venv/bin/python scripts/i18n.py init uz    # start a new language's messages.po

Sources are those listed in babel.cfg (repo root). Messages are found in calls to the
keywords below, including ``N_``, the no-op marker the domain uses because it must not
import Flask (``anonsign.domain.messages``). A message is written once: file names are
kept as locations but line numbers are not, so moving a string does not touch the
catalogs. The .mo files are committed and shipped as package data; compiling skips
fuzzy and untranslated entries, and tests/web/test_i18n.py fails until every entry is
translated and every .mo matches its .po.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "babel.cfg"
TRANSLATIONS = ROOT / "src" / "anonsign" / "web" / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
DOMAIN = "messages"

#: Functions whose string arguments are messages (Babel's keyword spec: argument indices).
KEYWORDS: dict[str, object] = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "lazy_gettext": None,
    "lazy_ngettext": (1, 2),
    "lazy_pgettext": ((1, "c"), 2),
    "N_": None,
}
COMMENT_TAGS = ("TRANSLATORS:",)

_HEADER = {
    "header_comment": (
        "# Translations of the pages an anonsign signer reads.\n"
        "# Plain, careful words: readers may be at risk.\n"
        "# Keep every %(name)s placeholder exactly as it is.\n"
        "# After any change, run scripts/i18n.py (README.md, Languages).\n"
        "#"
    ),
    "project": "anonsign",
    "copyright_holder": "the anonsign authors",
    "last_translator": "anonsign translators",
    "language_team": "anonsign translators",
}

_POT_DATE = re.compile(r'^"POT-Creation-Date: [^"]*"$', re.MULTILINE)


def locales() -> list[str]:
    """The languages that have a catalog (English, the source language, has none)."""
    return sorted(p.parent.parent.name for p in TRANSLATIONS.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def po_path(locale: str) -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def _is_source_dir(path: str) -> bool:
    # Only under src/, and never hidden or private folders (__pycache__, .mypy_cache).
    relative = Path(path).relative_to(ROOT)
    return relative.parts[0] == "src" and not relative.name.startswith((".", "_"))


def extract_catalog() -> Catalog:
    """Every message in the sources, as a template catalog (nothing is written)."""
    with MAPPING.open(encoding="utf-8") as fileobj:
        method_map, options_map = parse_mapping_cfg(fileobj, str(MAPPING))
    catalog = Catalog(fuzzy=False, charset="utf-8", **_HEADER)
    for filename, lineno, message, comments, context in extract_from_dir(
        ROOT,
        method_map,
        options_map,
        keywords=KEYWORDS,
        comment_tags=COMMENT_TAGS,
        strip_comment_tags=True,
        directory_filter=_is_source_dir,
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def render_po(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=79, include_lineno=False, ignore_obsolete=True)
    return buffer.getvalue()


def render_mo(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def read_catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fileobj:
        return read_po(fileobj, locale=locale)


def _write_if_changed(path: Path, data: bytes, *, ignore: re.Pattern[str] | None = None) -> bool:
    if path.exists():
        old = path.read_bytes()
        if old == data:
            return False
        if ignore is not None and ignore.sub("", old.decode()) == ignore.sub("", data.decode()):
            return False  # only the timestamp differs: keep the file as it is
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"wrote {path.relative_to(ROOT)}")
    return True


def extract() -> None:
    _write_if_changed(TEMPLATE, render_po(extract_catalog()), ignore=_POT_DATE)


def update() -> None:
    template = read_catalog(TEMPLATE)
    for locale in locales():
        catalog = read_catalog(po_path(locale), locale)
        catalog.update(template)
        _write_if_changed(po_path(locale), render_po(catalog))
        missing = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
        if missing:
            print(f"{locale}: {len(missing)} message(s) to translate or review (empty or fuzzy)")


def compile_all() -> None:
    for locale in locales():
        catalog = read_catalog(po_path(locale), locale)
        _write_if_changed(po_path(locale).with_suffix(".mo"), render_mo(catalog))


def init(locale: str) -> None:
    path = po_path(locale)
    if path.exists():
        sys.exit(f"ERROR: {path.relative_to(ROOT)} already exists; run the update step instead.")
    catalog = Catalog(locale=locale, fuzzy=False, charset="utf-8", **_HEADER)
    catalog.update(read_catalog(TEMPLATE))
    _write_if_changed(path, render_po(catalog))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "step", nargs="?", default="all", choices=["all", "extract", "update", "compile", "init"]
    )
    parser.add_argument("locale", nargs="?", help="for init: the new language's code, e.g. uz")
    args = parser.parse_args(argv)
    if args.step == "init":
        if not args.locale:
            parser.error("init needs a language code, e.g. `init uz`")
        init(args.locale)
        return
    if args.step in ("all", "extract"):
        extract()
    if args.step in ("all", "update"):
        update()
    if args.step in ("all", "compile"):
        compile_all()


if __name__ == "__main__":
    main()
