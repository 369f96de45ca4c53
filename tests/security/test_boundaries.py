"""Import boundaries: the web process cannot open contacts; offline tools need no server code.

Checked in fresh interpreters, so nothing imported by other tests can hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def modules_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout))


def test_the_web_app_never_loads_the_code_that_opens_contacts() -> None:
    loaded = modules_after(
        "from anonsign.app import create_app\n"
        "import anonsign.web.public, anonsign.service, anonsign.cli.gunicorn_app"
    )
    assert "anonsign.web.public" in loaded
    assert "anonsign.crypto.keyfile" not in loaded
    assert "anonsign.crypto.unseal" not in loaded


@pytest.mark.parametrize(
    "statement",
    [
        "import anonsign.audit.merkle",
        "import anonsign.crypto.unseal, anonsign.crypto.keyfile, anonsign.contacts_export",
        "from anonsign.cli import offline",
        "import anonsign.crypto.notes, anonsign.audit.checkpoint",
        "import anonsign.audit.bundle, anonsign.audit.verify",
        "from anonsign.cli import audit",
        "from anonsign.cli import calibrate",
    ],
)
def test_offline_and_audit_code_needs_neither_flask_nor_sqlalchemy(statement: str) -> None:
    loaded = modules_after(statement)
    assert not {m for m in loaded if m.split(".")[0] in {"flask", "sqlalchemy", "alembic"}}
