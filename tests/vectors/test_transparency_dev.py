"""Known answers for the Merkle log: transparency-dev vectors, RFC 6962 and C2SP trees.

Every transparency-dev/merkle JSON vector must verify exactly when ``wantErr`` is false;
RFC 6962's eight-entry test tree and the C2SP ``merkle-tree.md`` seven-entry example fix
the roots and the proofs our generator produces.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from anonsign.audit import merkle
from anonsign.errors import MerkleError

# The vectors are copied into the repository (tests/vectors/transparency-dev-merkle) so a
# fresh clone tests on its own; ANONSIGN_VECTORS_DIR points at another copy, laid out like
# the project's shared vectors/ folder.
VECTORS_DIR = Path(os.environ.get("ANONSIGN_VECTORS_DIR") or Path(__file__).resolve().parent)
TESTDATA = VECTORS_DIR / "transparency-dev-merkle" / "testdata"
VECTOR_FILES = sorted(TESTDATA.rglob("*.json"))

# RFC 6962's test tree (also the leaves behind every transparency-dev root).
RFC6962_ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# MTH of the first n entries, n = 0..8 (n = 0 is SHA-256("")).
RFC6962_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _verify(vector: dict[str, Any]) -> None:
    proof = [_b64(p) for p in vector["proof"] or []]  # null is the empty proof
    if "leafIdx" in vector:
        merkle.verify_inclusion(
            _b64(vector["leafHash"]),
            vector["leafIdx"],
            vector["treeSize"],
            proof,
            _b64(vector["root"]),
        )
    else:
        merkle.verify_consistency(
            vector["size1"], vector["size2"], _b64(vector["root1"]), _b64(vector["root2"]), proof
        )


def test_vectors_are_all_there() -> None:
    # 98 inclusion and 98 consistency files: an empty folder must not pass as "no failures".
    kinds = [path.relative_to(TESTDATA).parts[0] for path in VECTOR_FILES]
    assert kinds.count("inclusion") == 98
    assert kinds.count("consistency") == 98


@pytest.mark.parametrize(
    "path", VECTOR_FILES, ids=[str(p.relative_to(TESTDATA)) for p in VECTOR_FILES]
)
def test_transparency_dev_vector(path: Path) -> None:
    vector = _load(path)
    if vector["wantErr"]:
        with pytest.raises(MerkleError):
            _verify(vector)
    else:
        _verify(vector)


# --- RFC 6962 test tree -------------------------------------------------------------------


def _rfc6962_store() -> merkle.MemoryNodeStore:
    store = merkle.MemoryNodeStore()
    for entry in RFC6962_ENTRIES:
        store.append(merkle.leaf_hash(entry))
    return store


@pytest.mark.parametrize("size", range(9))
def test_rfc6962_roots_for_every_prefix(size: int) -> None:
    leaves = [merkle.leaf_hash(e) for e in RFC6962_ENTRIES[:size]]
    compact = merkle.CompactRange()
    compact.extend(leaves)
    assert merkle.root(leaves) == RFC6962_ROOTS[size]
    assert compact.root() == RFC6962_ROOTS[size]
    assert merkle.tree_root(size, _rfc6962_store()) == RFC6962_ROOTS[size]


def test_rfc6962_roots_differ_from_a_changed_entry() -> None:
    # The negative beside the known answers: one changed entry changes the root.
    leaves = [merkle.leaf_hash(e) for e in RFC6962_ENTRIES]
    leaves[5] = merkle.leaf_hash(b"\x40\x41\x42\x44")
    assert merkle.root(leaves) != RFC6962_ROOTS[8]


def test_rfc6962_roots_match_the_transparency_dev_vectors() -> None:
    # Every root a passing vector names is the RFC 6962 root for that size.
    seen = 0
    for path in VECTOR_FILES:
        vector = _load(path)
        if vector["wantErr"]:
            continue
        if "leafIdx" in vector:
            pairs = [(vector["treeSize"], vector["root"])]
        else:
            pairs = [(vector["size1"], vector["root1"]), (vector["size2"], vector["root2"])]
        for size, root in pairs:
            if not path.parent.name.isdigit():
                continue  # additional/ and single-entry/ use placeholder roots and leaves
            assert _b64(root) == RFC6962_ROOTS[size], path
            seen += 1
    assert seen > 0


def test_rfc6962_vector_proofs_are_what_we_generate() -> None:
    # Our generator reproduces every happy-path proof of the vectors, byte for byte.
    store = _rfc6962_store()
    for path in VECTOR_FILES:
        vector = _load(path)
        if path.name != "happy-path.json":
            continue
        want = [_b64(p) for p in vector["proof"] or []]
        if "leafIdx" in vector:
            got = merkle.inclusion_proof(vector["leafIdx"], vector["treeSize"], store)
        else:
            got = merkle.consistency_proof(vector["size1"], vector["size2"], store)
        assert got == want, path


# --- C2SP merkle-tree.md worked example (seven entries) -----------------------------------


class C2SPExample:
    """The labelled seven-leaf tree of C2SP merkle-tree.md, over RFC 6962's entries."""

    def __init__(self) -> None:
        a, b, c, d, e, f, g = (merkle.leaf_hash(x) for x in RFC6962_ENTRIES[:7])
        h = merkle.node_hash(a, b)
        i = merkle.node_hash(c, d)
        j = merkle.node_hash(e, f)
        k = merkle.node_hash(h, i)
        l = merkle.node_hash(j, g)  # noqa: E741 (the spec's label)
        self.labels = dict(zip("abcdefghijkl", (a, b, c, d, e, f, g, h, i, j, k, l), strict=True))
        self.leaves = [a, b, c, d, e, f, g]
        self.root = merkle.node_hash(k, l)
        self.store = merkle.MemoryNodeStore()
        for leaf in self.leaves:
            self.store.append(leaf)

    def hashes(self, labels: str) -> list[bytes]:
        return [self.labels[x] for x in labels]


C2SP_INCLUSION = [(0, "bil"), (3, "chl"), (4, "fgk"), (6, "jk")]
C2SP_CONSISTENCY = [(3, "cdhl"), (4, "l"), (6, "jgk")]


def test_c2sp_example_root() -> None:
    example = C2SPExample()
    assert merkle.root(example.leaves) == example.root == RFC6962_ROOTS[7]
    assert example.store.root() == example.root


@pytest.mark.parametrize(("index", "labels"), C2SP_INCLUSION)
def test_c2sp_example_inclusion(index: int, labels: str) -> None:
    example = C2SPExample()
    proof = merkle.inclusion_proof(index, 7, example.store)
    assert proof == example.hashes(labels)
    merkle.verify_inclusion(example.leaves[index], index, 7, proof, example.root)


@pytest.mark.parametrize(("index", "labels"), C2SP_INCLUSION)
def test_c2sp_example_inclusion_rejects_reversed_proof(index: int, labels: str) -> None:
    example = C2SPExample()
    with pytest.raises(MerkleError, match="does not lead to the root"):
        merkle.verify_inclusion(
            example.leaves[index], index, 7, example.hashes(labels[::-1]), example.root
        )


@pytest.mark.parametrize(("old_size", "labels"), C2SP_CONSISTENCY)
def test_c2sp_example_consistency(old_size: int, labels: str) -> None:
    example = C2SPExample()
    proof = merkle.consistency_proof(old_size, 7, example.store)
    assert proof == example.hashes(labels)
    old_root = merkle.root(example.leaves[:old_size])
    merkle.verify_consistency(old_size, 7, old_root, example.root, proof)


@pytest.mark.parametrize(("old_size", "labels"), C2SP_CONSISTENCY)
def test_c2sp_example_consistency_rejects_wrong_old_size(old_size: int, labels: str) -> None:
    example = C2SPExample()
    old_root = merkle.root(example.leaves[:old_size])
    with pytest.raises(MerkleError):
        merkle.verify_consistency(old_size - 1, 7, old_root, example.root, example.hashes(labels))
