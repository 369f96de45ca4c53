"""Every test SECURITY.md names exists: a promise that points at no test is not made."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_security_md_names_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    files = set(re.findall(r"tests/[A-Za-z0-9_/.-]+\.py", text))
    assert files, "SECURITY.md names no test file"
    missing_files = sorted(f for f in files if not (ROOT / f).is_file())
    assert missing_files == [], f"SECURITY.md names test files that do not exist: {missing_files}"
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))
    names = set(re.findall(r"::(test_[a-z0-9_]+)", text))
    missing = sorted(n for n in names if f"def {n}(" not in sources)
    assert missing == [], f"SECURITY.md names tests that do not exist: {missing}"
