"""Promises about the crypto package's shape: who may import what.

The web process seals contacts with ``seal``; if it could ever import ``keyfile`` or
``unseal``, a compromised server would be one step from opening them. And keeping every
primitive behind pyca/cryptography (plus argon2-cffi in ``kdf`` alone) keeps the
audited surface small.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import anonsign
from anonsign.crypto import labels

PACKAGE_SRC = Path(anonsign.__file__).resolve().parent
CRYPTO = PACKAGE_SRC / "crypto"
SERVER_SIDE = ("keys", "seal", "dedup", "master", "kdf", "labels")
OFFLINE_ONLY = ("anonsign.crypto.keyfile", "anonsign.crypto.unseal")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_server_side_modules_do_not_load_offline_ones() -> None:
    imports = "; ".join(f"import anonsign.crypto.{name}" for name in SERVER_SIDE)
    code = f"import sys; {imports}; print(','.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_SRC.parent)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    loaded = set(result.stdout.strip().split(","))
    assert "anonsign.crypto.seal" in loaded
    for module in OFFLINE_ONLY:
        assert module not in loaded


def test_only_kdf_imports_argon2() -> None:
    for path in PACKAGE_SRC.rglob("*.py"):
        uses_argon2 = any(name.split(".")[0] == "argon2" for name in imported_modules(path))
        assert uses_argon2 == (path == CRYPTO / "kdf.py"), path


def test_no_other_crypto_library_and_no_stdlib_keyed_hashing() -> None:
    forbidden = {"hashlib", "hmac", "nacl", "Crypto", "Cryptodome", "passlib", "bcrypt", "ssl"}
    for path in CRYPTO.rglob("*.py"):
        roots = {name.split(".")[0] for name in imported_modules(path)}
        assert not roots & forbidden, path


def test_within_crypto_only_unseal_imports_the_offline_modules() -> None:
    # The offline CLI legitimately imports them; which other packages may is the import
    # contract's business (web, storage: never), checked where those packages live.
    allowed = {CRYPTO / "unseal.py", CRYPTO / "keyfile.py"}
    for path in CRYPTO.rglob("*.py"):
        if path in allowed:
            continue
        assert not imported_modules(path) & set(OFFLINE_ONLY), path


def test_labels_are_distinct_and_versioned() -> None:
    values = [
        value
        for name, value in vars(labels).items()
        if name.isupper() and isinstance(value, bytes | str)
    ]
    assert len(values) == len(set(values))
    for value in values:
        text = value.decode() if isinstance(value, bytes) else value
        # A new format is a new label (".../v2"); the sealed-contact magic counts too.
        assert re.search(r"v[0-9]+:?$|^ASC[0-9]$", text), text
