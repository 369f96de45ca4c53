"""Properties of the Merkle log: roots, compact ranges, proof generation and verification.

The reference throughout is a naive MTH written here straight from RFC 9162 §2.1.1, and
the proof definitions PATH and SUBPROOF of §2.1.3.1 and §2.1.4.1, recursive and slow on
purpose. Every positive property has its negative beside it: a changed byte, hash, index
or size must make verification fail with MerkleError.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anonsign.audit import merkle
from anonsign.errors import AnonsignError, MerkleError

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the reference, straight from the RFC -------------------------------------------------


def ref_leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes, the recursive definition of RFC 9162 §2.1.1."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = largest_power_of_two_below(n)
    return ref_node(ref_mth(leaves[:k]), ref_mth(leaves[k:]))


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


# --- helpers ------------------------------------------------------------------------------


def entries_for(seed: bytes, size: int) -> list[bytes]:
    # Distinct entries of varied length, like dedup keys but not all 32 bytes.
    return [seed + i.to_bytes(3, "big") for i in range(size)]


def build(leaves: Sequence[bytes]) -> merkle.MemoryNodeStore:
    store = merkle.MemoryNodeStore()
    for leaf in leaves:
        store.append(leaf)
    return store


class CountingReader:
    """Wraps a NodeReader: counts reads and refuses any node past the given tree size."""

    def __init__(self, inner: merkle.NodeReader, size: int) -> None:
        self.inner = inner
        self.size = size
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        self.reads += 1
        assert (index + 1) << level <= self.size, (level, index, self.size)
        return self.inner.node(level, index)


class SyntheticReader:
    """Any complete subtree of an arbitrarily large tree, as a stand-in hash."""

    def node(self, level: int, index: int) -> bytes:
        return hashlib.sha256(f"{level}/{index}".encode()).digest()


def read_bound(size: int) -> int:
    return 2 * math.ceil(math.log2(size)) + 2 if size > 1 else 2


def flip(value: bytes, offset: int, mask: int = 0x01) -> bytes:
    return value[:offset] + bytes([value[offset] ^ mask]) + value[offset + 1 :]


sizes = st.integers(min_value=1, max_value=300)
seeds = st.binary(min_size=0, max_size=8)


# --- hashing ------------------------------------------------------------------------------


def test_hash_constants_and_primitives_follow_the_rfc() -> None:
    assert merkle.LEAF_PREFIX == b"\x00"
    assert merkle.NODE_PREFIX == b"\x01"
    assert merkle.HASH_SIZE == 32
    assert merkle.empty_root() == hashlib.sha256(b"").digest()
    assert merkle.root([]) == merkle.empty_root()
    assert merkle.leaf_hash(b"abc") == ref_leaf(b"abc")
    a, b = ref_leaf(b"a"), ref_leaf(b"b")
    assert merkle.node_hash(a, b) == ref_node(a, b)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    # A 64-byte entry equal to two child hashes is not the node over them.
    a, b = ref_leaf(b"a"), ref_leaf(b"b")
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)
    assert merkle.node_hash(a, b) != merkle.node_hash(b, a)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_node_hash_rejects_wrong_length(length: int) -> None:
    good = ref_leaf(b"a")
    with pytest.raises(MerkleError, match=f"left child hash is {length} bytes long, expected 32"):
        merkle.node_hash(b"x" * length, good)
    with pytest.raises(MerkleError, match=f"right child hash is {length} bytes long"):
        merkle.node_hash(good, b"x" * length)


def test_merkle_error_is_an_anonsign_error_with_a_default_message() -> None:
    assert issubclass(MerkleError, AnonsignError)
    assert merkle.MerkleError is MerkleError
    assert str(MerkleError()).startswith("This log proof does not check out")


# --- roots and the compact range ----------------------------------------------------------


@PROPERTY
@given(size=st.integers(min_value=0, max_value=300), seed=seeds)
def test_all_roots_agree_with_the_rfc_definition(size: int, seed: bytes) -> None:
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, size)]
    want = ref_mth(leaves)

    one_by_one = merkle.CompactRange()
    for leaf in leaves:
        one_by_one.append(leaf)
    in_bulk = merkle.CompactRange()
    in_bulk.extend(leaves)
    store = build(leaves)

    assert merkle.root(leaves) == want
    assert merkle.root(iter(leaves)) == want  # a stream is enough
    assert one_by_one.root() == in_bulk.root() == want
    assert one_by_one.size == in_bulk.size == store.size == size
    assert one_by_one.to_list() == in_bulk.to_list()
    assert store.root() == want
    assert merkle.tree_root(size, store) == want


@PROPERTY
@given(entries=st.lists(st.binary(max_size=40), min_size=1, max_size=40))
def test_root_over_arbitrary_entries(entries: list[bytes]) -> None:
    leaves = [merkle.leaf_hash(e) for e in entries]
    assert leaves == [ref_leaf(e) for e in entries]
    assert merkle.root(leaves) == ref_mth(leaves)


@PROPERTY
@given(size=sizes, seed=seeds, position=st.integers(min_value=0), mask=st.integers(1, 255))
def test_root_changes_with_any_changed_leaf(
    size: int, seed: bytes, position: int, mask: int
) -> None:
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, size)]
    changed = list(leaves)
    changed[position % size] = flip(leaves[position % size], position % 32, mask)
    assert merkle.root(changed) != merkle.root(leaves)
    assert merkle.root(leaves[:-1]) != merkle.root(leaves)
    assert merkle.root(leaves[::-1]) != merkle.root(leaves) or size == 1


def test_every_prefix_root_of_a_store_matches() -> None:
    leaves = [ref_leaf(e) for e in entries_for(b"prefix", 130)]
    store = build(leaves)
    for size in range(131):
        assert merkle.tree_root(size, store) == ref_mth(leaves[:size])


@PROPERTY
@given(size=st.integers(min_value=0, max_value=300), seed=seeds)
def test_compact_range_round_trips_through_a_list(size: int, seed: bytes) -> None:
    compact = merkle.CompactRange()
    compact.extend(merkle.leaf_hash(e) for e in entries_for(seed, size))
    stored = compact.to_list()
    assert len(stored) == bin(size).count("1")
    assert all(isinstance(h, bytes) and len(h) == 32 for h in stored)

    restored = merkle.CompactRange.from_list(compact.size, stored)
    assert restored.size == compact.size
    assert restored.to_list() == stored
    assert restored.root() == compact.root()
    # ...and keeps growing exactly like the original.
    more = [merkle.leaf_hash(e) for e in entries_for(seed + b"+", 5)]
    compact.extend(more)
    restored.extend(more)
    assert restored.root() == compact.root()
    assert restored.to_list() == compact.to_list()


@PROPERTY
@given(size=sizes, seed=seeds)
def test_compact_range_from_list_rejects_a_wrong_shape(size: int, seed: bytes) -> None:
    compact = merkle.CompactRange()
    compact.extend(merkle.leaf_hash(e) for e in entries_for(seed, size))
    stored = compact.to_list()
    with pytest.raises(MerkleError, match=f"has {len(stored)} frontier hashes, got"):
        merkle.CompactRange.from_list(size, [*stored, stored[0]])
    with pytest.raises(MerkleError, match="frontier hashes, got"):
        merkle.CompactRange.from_list(size, stored[:-1])
    with pytest.raises(MerkleError, match="frontier hash 0 is 31 bytes long, expected 32"):
        merkle.CompactRange.from_list(size, [stored[0][:31], *stored[1:]])
    with pytest.raises(MerkleError, match="tree size is -1"):
        merkle.CompactRange.from_list(-1, [])
    # A frontier saved for one size does not load as a size with another shape.
    with pytest.raises(MerkleError, match="frontier hashes, got"):
        merkle.CompactRange.from_list(2 * size + 1, stored)


def test_compact_range_append_reports_the_completed_subtrees() -> None:
    compact = merkle.CompactRange()
    leaves = [ref_leaf(e) for e in entries_for(b"rows", 8)]
    rows = [compact.append(leaf) for leaf in leaves]
    assert [[(level, index) for level, index, _ in r] for r in rows] == [
        [(0, 0)],
        [(0, 1), (1, 0)],
        [(0, 2)],
        [(0, 3), (1, 1), (2, 0)],
        [(0, 4)],
        [(0, 5), (1, 2)],
        [(0, 6)],
        [(0, 7), (1, 3), (2, 1), (3, 0)],
    ]
    assert rows[7][-1][2] == ref_mth(leaves)
    assert rows[5][-1][2] == ref_mth(leaves[4:6])


@pytest.mark.parametrize("length", [0, 31, 33])
def test_compact_range_rejects_a_wrong_length_leaf_and_stays_unchanged(length: int) -> None:
    compact = merkle.CompactRange()
    compact.extend([ref_leaf(b"a"), ref_leaf(b"b"), ref_leaf(b"c")])
    before = (compact.size, compact.to_list())
    with pytest.raises(MerkleError, match=f"leaf hash 3 is {length} bytes long, expected 32"):
        compact.append(b"\x00" * length)
    with pytest.raises(MerkleError, match=f"leaf hash 4 is {length} bytes long, expected 32"):
        compact.extend([ref_leaf(b"d"), b"\x00" * length])
    assert (compact.size, compact.to_list()) == before
    with pytest.raises(MerkleError, match=f"leaf hash 1 is {length} bytes long"):
        merkle.root([ref_leaf(b"a"), b"\x00" * length])


def test_compact_range_copy_is_independent() -> None:
    compact = merkle.CompactRange()
    compact.extend([ref_leaf(b"a"), ref_leaf(b"b"), ref_leaf(b"c")])
    ahead = compact.copy()
    ahead.append(ref_leaf(b"d"))
    assert compact.size == 3
    assert ahead.size == 4
    assert compact.root() == ref_mth([ref_leaf(x) for x in (b"a", b"b", b"c")])
    assert "size=3" in repr(compact)


# --- inclusion proofs ---------------------------------------------------------------------


@PROPERTY
@given(size=sizes, seed=seeds)
def test_every_inclusion_proof_verifies(size: int, seed: bytes) -> None:
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, size)]
    store = build(leaves)
    tree_root = store.root()
    for index in range(size):
        proof = merkle.inclusion_proof(index, size, store)
        assert proof == ref_path(index, leaves)
        merkle.verify_inclusion(leaves[index], index, size, proof, tree_root)
        assert merkle.root_from_inclusion(leaves[index], index, size, proof) == tree_root


@PROPERTY
@given(
    new_size=sizes,
    seed=seeds,
    data=st.data(),
)
def test_inclusion_proofs_for_earlier_tree_sizes_verify(
    new_size: int, seed: bytes, data: st.DataObject
) -> None:
    # The server proves inclusion in any published (older) tree head from today's store.
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, new_size)]
    store = build(leaves)
    size = data.draw(st.integers(min_value=1, max_value=new_size), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = merkle.inclusion_proof(index, size, store)
    assert proof == ref_path(index, leaves[:size])
    merkle.verify_inclusion(leaves[index], index, size, proof, ref_mth(leaves[:size]))


def _inclusion_case(size: int, seed: bytes, index: int) -> tuple[list[bytes], list[bytes], bytes]:
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, size)]
    store = build(leaves)
    return leaves, merkle.inclusion_proof(index, size, store), store.root()


@PROPERTY
@given(size=st.integers(min_value=2, max_value=300), seed=seeds, data=st.data())
def test_inclusion_fails_for_any_changed_proof_byte(
    size: int, seed: bytes, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    leaves, proof, tree_root = _inclusion_case(size, seed, index)
    mask = data.draw(st.integers(1, 255), label="mask")
    for position in range(len(proof)):
        for offset in range(merkle.HASH_SIZE):
            bad = list(proof)
            bad[position] = flip(proof[position], offset, mask)
            with pytest.raises(MerkleError, match="does not lead to the root"):
                merkle.verify_inclusion(leaves[index], index, size, bad, tree_root)
    offset = data.draw(st.integers(0, 31), label="offset")
    with pytest.raises(MerkleError, match="does not lead to the root"):
        merkle.verify_inclusion(flip(leaves[index], offset, mask), index, size, proof, tree_root)
    with pytest.raises(MerkleError, match="does not lead to the root"):
        merkle.verify_inclusion(leaves[index], index, size, proof, flip(tree_root, offset, mask))


@PROPERTY
@given(size=sizes, seed=seeds, data=st.data())
def test_inclusion_fails_for_a_dropped_or_added_hash(
    size: int, seed: bytes, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    leaves, proof, tree_root = _inclusion_case(size, seed, index)
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    candidates = [proof[:i] + proof[i + 1 :] for i in range(len(proof))]
    candidates += [[*proof[:i], extra, *proof[i:]] for i in range(len(proof) + 1)]
    candidates += [[*proof[:i], proof[i], *proof[i:]] for i in range(len(proof))]
    for bad in candidates:
        with pytest.raises(MerkleError, match=f"inclusion proof has {len(bad)} hashes, expected"):
            merkle.verify_inclusion(leaves[index], index, size, bad, tree_root)


@PROPERTY
@given(size=st.integers(min_value=2, max_value=300), seed=seeds, data=st.data())
def test_inclusion_fails_for_another_index(size: int, seed: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
    leaves, proof, tree_root = _inclusion_case(size, seed, index)
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(leaves[index], other, size, proof, tree_root)
    # Nor does another leaf verify at this index with this proof.
    with pytest.raises(MerkleError, match="does not lead to the root"):
        merkle.verify_inclusion(leaves[other], index, size, proof, tree_root)


@PROPERTY
@given(size=sizes, seed=seeds, data=st.data())
def test_inclusion_fails_for_another_tree_size(size: int, seed: bytes, data: st.DataObject) -> None:
    # Claimed against the genuine root of the claimed size, a proof made for one size fails.
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, 301)]
    store = build(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    other = data.draw(st.integers(index + 1, 301).filter(lambda s: s != size), label="other size")
    proof = merkle.inclusion_proof(index, size, store)
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(leaves[index], index, other, proof, ref_mth(leaves[:other]))


def test_inclusion_proof_binds_position_not_tree_size() -> None:
    # Documented limit (RFC 9162 leaves it to the signed tree head): the same proof and
    # root can also pass under another size whose path has the same shape, so a
    # checkpoint must sign size and root together.
    leaves = [ref_leaf(e) for e in entries_for(b"shape", 4)]
    proof = merkle.inclusion_proof(0, 3, build(leaves))
    merkle.verify_inclusion(leaves[0], 0, 3, proof, ref_mth(leaves[:3]))
    merkle.verify_inclusion(leaves[0], 0, 4, proof, ref_mth(leaves[:3]))
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(leaves[0], 0, 4, proof, ref_mth(leaves[:4]))


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (5, 5), (7, 5), (-1, 5)])
def test_inclusion_rejects_an_index_outside_the_tree(index: int, size: int) -> None:
    leaf = ref_leaf(b"a")
    with pytest.raises(MerkleError, match=f"leaf index {index} is not in a tree of size {size}"):
        merkle.verify_inclusion(leaf, index, size, [], leaf)
    store = build([ref_leaf(e) for e in entries_for(b"x", 8)])
    with pytest.raises(MerkleError, match=f"leaf index {index} is not in a tree of size {size}"):
        merkle.inclusion_proof(index, size, store)


def test_inclusion_rejects_wrong_length_hashes() -> None:
    leaves = [ref_leaf(e) for e in entries_for(b"len", 5)]
    proof = merkle.inclusion_proof(2, 5, build(leaves))
    tree_root = ref_mth(leaves)
    with pytest.raises(MerkleError, match="leaf hash is 31 bytes long, expected 32"):
        merkle.verify_inclusion(leaves[2][:31], 2, 5, proof, tree_root)
    with pytest.raises(MerkleError, match="root is 0 bytes long, expected 32"):
        merkle.verify_inclusion(leaves[2], 2, 5, proof, b"")
    with pytest.raises(MerkleError, match="inclusion proof hash 1 is 33 bytes long, expected 32"):
        merkle.verify_inclusion(leaves[2], 2, 5, [proof[0], proof[1] + b"\x00"], tree_root)
    with pytest.raises(MerkleError, match="tree size is -3"):
        merkle.verify_inclusion(leaves[2], 2, -3, proof, tree_root)


def test_inclusion_failure_names_computed_and_expected_roots() -> None:
    leaves = [ref_leaf(e) for e in entries_for(b"msg", 6)]
    proof = merkle.inclusion_proof(4, 6, build(leaves))
    wrong_root = ref_mth(leaves[:5])
    computed = ref_mth(leaves)
    with pytest.raises(MerkleError) as caught:
        merkle.verify_inclusion(leaves[4], 4, 6, proof, wrong_root)
    assert str(caught.value) == (
        "inclusion proof for leaf 4 does not lead to the root of the tree of size 6: "
        f"computed {computed.hex()}, expected {wrong_root.hex()}"
    )
    with pytest.raises(MerkleError) as caught:
        merkle.verify_inclusion(leaves[4], 4, 6, [*proof, proof[0]], computed)
    assert str(caught.value) == (
        "inclusion proof has 3 hashes, expected 2 for leaf 4 in a tree of size 6"
    )


# --- consistency proofs -------------------------------------------------------------------


@PROPERTY
@given(new_size=sizes, seed=seeds)
def test_every_consistency_proof_verifies(new_size: int, seed: bytes) -> None:
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, new_size)]
    store = build(leaves)
    new_root = store.root()
    for old_size in range(1, new_size + 1):
        proof = merkle.consistency_proof(old_size, new_size, store)
        want = ref_subproof(old_size, leaves, True) if old_size < new_size else []
        assert proof == want
        old_root = ref_mth(leaves[:old_size])
        merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
        assert merkle.root_from_consistency(old_size, new_size, old_root, proof) == new_root


@PROPERTY
@given(seed=seeds, data=st.data())
def test_consistency_between_any_two_earlier_sizes(seed: bytes, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, 300)]
    store = build(leaves)
    new_size = data.draw(st.integers(1, 300), label="new_size")
    old_size = data.draw(st.integers(1, new_size), label="old_size")
    proof = merkle.consistency_proof(old_size, new_size, store)
    merkle.verify_consistency(
        old_size, new_size, ref_mth(leaves[:old_size]), ref_mth(leaves[:new_size]), proof
    )


def _consistency_case(
    new_size: int, seed: bytes, old_size: int
) -> tuple[list[bytes], bytes, bytes]:
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, new_size)]
    store = build(leaves)
    proof = merkle.consistency_proof(old_size, new_size, store)
    return proof, ref_mth(leaves[:old_size]), store.root()


@PROPERTY
@given(new_size=st.integers(min_value=2, max_value=300), seed=seeds, data=st.data())
def test_consistency_fails_for_any_changed_byte(
    new_size: int, seed: bytes, data: st.DataObject
) -> None:
    old_size = data.draw(st.integers(1, new_size - 1), label="old_size")
    proof, old_root, new_root = _consistency_case(new_size, seed, old_size)
    mask = data.draw(st.integers(1, 255), label="mask")
    for position in range(len(proof)):
        for offset in range(merkle.HASH_SIZE):
            bad = list(proof)
            bad[position] = flip(proof[position], offset, mask)
            with pytest.raises(MerkleError, match=r"does not lead to the (old|new) root"):
                merkle.verify_consistency(old_size, new_size, old_root, new_root, bad)
    offset = data.draw(st.integers(0, 31), label="offset")
    with pytest.raises(MerkleError, match=r"does not lead to the (old|new) root"):
        merkle.verify_consistency(old_size, new_size, flip(old_root, offset, mask), new_root, proof)
    with pytest.raises(MerkleError, match="does not lead to the new root"):
        merkle.verify_consistency(old_size, new_size, old_root, flip(new_root, offset, mask), proof)
    with pytest.raises(MerkleError):
        merkle.verify_consistency(old_size, new_size, new_root, old_root, proof)  # swapped


@PROPERTY
@given(new_size=st.integers(min_value=2, max_value=300), seed=seeds, data=st.data())
def test_consistency_fails_for_a_dropped_or_added_hash(
    new_size: int, seed: bytes, data: st.DataObject
) -> None:
    old_size = data.draw(st.integers(1, new_size - 1), label="old_size")
    proof, old_root, new_root = _consistency_case(new_size, seed, old_size)
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    candidates = [proof[:i] + proof[i + 1 :] for i in range(len(proof))]
    candidates += [[*proof[:i], extra, *proof[i:]] for i in range(len(proof) + 1)]
    candidates += [[old_root, *proof], [*proof, new_root]]
    for bad in candidates:
        with pytest.raises(MerkleError, match=f"consistency proof has {len(bad)} hashes"):
            merkle.verify_consistency(old_size, new_size, old_root, new_root, bad)


@PROPERTY
@given(new_size=st.integers(min_value=2, max_value=300), seed=seeds, data=st.data())
def test_consistency_fails_for_other_sizes(new_size: int, seed: bytes, data: st.DataObject) -> None:
    # Claimed against the genuine roots of the claimed sizes, a proof made for other
    # sizes fails.
    leaves = [merkle.leaf_hash(e) for e in entries_for(seed, 400)]
    store = build(leaves)
    old_size = data.draw(st.integers(1, new_size - 1), label="old_size")
    proof = merkle.consistency_proof(old_size, new_size, store)
    other_old = data.draw(
        st.integers(1, new_size).filter(lambda s: s != old_size), label="other old"
    )
    other_new = data.draw(
        st.integers(old_size, 400).filter(lambda s: s != new_size), label="other new"
    )
    with pytest.raises(MerkleError):
        merkle.verify_consistency(
            other_old, new_size, ref_mth(leaves[:other_old]), ref_mth(leaves[:new_size]), proof
        )
    with pytest.raises(MerkleError):
        merkle.verify_consistency(
            old_size, other_new, ref_mth(leaves[:old_size]), ref_mth(leaves[:other_new]), proof
        )


def test_consistency_proof_binds_roots_not_tree_sizes() -> None:
    # Documented limit, as for inclusion: with the same two roots the same proof can pass
    # under another new size whose path has the same shape (1 -> 257 and 1 -> 258 here),
    # so a checkpoint must sign size and root together.
    leaves = [ref_leaf(e) for e in entries_for(b"shape", 258)]
    proof = merkle.consistency_proof(1, 257, build(leaves))
    old_root, new_root = ref_mth(leaves[:1]), ref_mth(leaves[:257])
    merkle.verify_consistency(1, 257, old_root, new_root, proof)
    merkle.verify_consistency(1, 258, old_root, new_root, proof)
    with pytest.raises(MerkleError, match="does not lead to the new root"):
        merkle.verify_consistency(1, 258, old_root, ref_mth(leaves), proof)


@pytest.mark.parametrize(("old_size", "new_size"), [(0, 0), (0, 1), (0, 7)])
def test_consistency_from_the_empty_tree_is_refused(old_size: int, new_size: int) -> None:
    empty = merkle.empty_root()
    with pytest.raises(MerkleError, match=r"from the empty tree \(size 0\) proves nothing"):
        merkle.verify_consistency(old_size, new_size, empty, empty, [])
    with pytest.raises(MerkleError, match=r"from the empty tree \(size 0\) proves nothing"):
        merkle.consistency_proof(old_size, new_size, build([]))


def test_consistency_between_equal_sizes() -> None:
    leaves = [ref_leaf(e) for e in entries_for(b"eq", 5)]
    store = build(leaves)
    tree_root = ref_mth(leaves)
    assert merkle.consistency_proof(5, 5, store) == []
    merkle.verify_consistency(5, 5, tree_root, tree_root, [])
    with pytest.raises(MerkleError, match="has 1 hashes, expected 0 between two trees of the same"):
        merkle.verify_consistency(5, 5, tree_root, tree_root, [tree_root])
    other = ref_mth(leaves[:4])
    with pytest.raises(MerkleError) as caught:
        merkle.verify_consistency(5, 5, tree_root, other, [])
    assert str(caught.value) == (
        f"two trees of the same size 5 have different roots: {tree_root.hex()} and {other.hex()}"
    )


@pytest.mark.parametrize(("old_size", "new_size"), [(2, 1), (8, 7), (1, 0)])
def test_consistency_rejects_a_shrinking_tree(old_size: int, new_size: int) -> None:
    leaves = [ref_leaf(e) for e in entries_for(b"shrink", 8)]
    message = f"old tree size {old_size} is larger than new tree size {new_size}"
    with pytest.raises(MerkleError, match=message):
        merkle.verify_consistency(
            old_size, new_size, ref_mth(leaves[:old_size]), ref_mth(leaves[:new_size]), []
        )
    with pytest.raises(MerkleError, match=message):
        merkle.consistency_proof(old_size, new_size, build(leaves))


def test_consistency_rejects_wrong_length_hashes_and_sizes() -> None:
    leaves = [ref_leaf(e) for e in entries_for(b"len", 7)]
    proof = merkle.consistency_proof(3, 7, build(leaves))
    old_root, new_root = ref_mth(leaves[:3]), ref_mth(leaves)
    with pytest.raises(MerkleError, match="old root is 9 bytes long, expected 32"):
        merkle.verify_consistency(3, 7, old_root[:9], new_root, proof)
    with pytest.raises(MerkleError, match="new root is 33 bytes long, expected 32"):
        merkle.verify_consistency(3, 7, old_root, new_root + b"\x00", proof)
    with pytest.raises(MerkleError, match="consistency proof hash 2 is 0 bytes long"):
        merkle.verify_consistency(3, 7, old_root, new_root, [*proof[:2], b"", *proof[3:]])
    with pytest.raises(MerkleError, match="old tree size is -1"):
        merkle.verify_consistency(-1, 7, old_root, new_root, proof)
    with pytest.raises(MerkleError, match="consistency proof has 0 hashes, expected 4"):
        merkle.verify_consistency(3, 7, old_root, new_root, [])


def test_consistency_failure_names_computed_and_expected_roots() -> None:
    leaves = [ref_leaf(e) for e in entries_for(b"msg", 7)]
    proof = merkle.consistency_proof(6, 7, build(leaves))
    old_root, new_root = ref_mth(leaves[:6]), ref_mth(leaves)
    with pytest.raises(MerkleError) as caught:
        merkle.verify_consistency(6, 7, old_root, old_root, proof)
    assert str(caught.value) == (
        "consistency proof from tree size 6 to 7 does not lead to the new root: "
        f"computed {new_root.hex()}, expected {old_root.hex()}"
    )


# --- what proof generation reads ----------------------------------------------------------


@pytest.mark.parametrize("size", [*range(1, 70), 255, 256, 257, 300])
def test_proofs_read_few_complete_nodes(size: int) -> None:
    store = build([ref_leaf(e) for e in entries_for(b"reads", size)])
    bound = read_bound(size)
    for index in range(size):
        counting = CountingReader(store, size)
        merkle.inclusion_proof(index, size, counting)
        assert counting.reads <= bound, (index, size, counting.reads)
    for old_size in range(1, size + 1):
        counting = CountingReader(store, size)
        merkle.consistency_proof(old_size, size, counting)
        assert counting.reads <= bound, (old_size, size, counting.reads)
    counting = CountingReader(store, size)
    merkle.tree_root(size, counting)
    assert counting.reads == bin(size).count("1")


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=1, max_value=2**48), data=st.data())
def test_proofs_in_huge_trees_read_logarithmically_many_nodes(
    size: int, data: st.DataObject
) -> None:
    # No store of this size exists; the synthetic reader shows the read pattern alone,
    # and CountingReader checks that every node read is a complete subtree.
    bound = read_bound(size)
    index = data.draw(st.integers(0, size - 1), label="index")
    counting = CountingReader(SyntheticReader(), size)
    proof = merkle.inclusion_proof(index, size, counting)
    assert counting.reads <= bound
    assert len(proof) <= math.ceil(math.log2(size))
    old_size = data.draw(st.integers(1, size), label="old_size")
    counting = CountingReader(SyntheticReader(), size)
    proof = merkle.consistency_proof(old_size, size, counting)
    assert counting.reads <= bound
    assert len(proof) <= math.ceil(math.log2(size)) + 1


def test_memory_store_refuses_incomplete_or_missing_nodes() -> None:
    store = build([ref_leaf(e) for e in entries_for(b"store", 5)])
    assert store.node(2, 0) == ref_mth([ref_leaf(e) for e in entries_for(b"store", 4)])
    for level, index in [(0, 5), (1, 2), (2, 1), (3, 0), (-1, 0), (0, -1)]:
        with pytest.raises(MerkleError, match=f"no complete subtree at level {level} index"):
            store.node(level, index)
    # Asking for a proof in a tree larger than the store fails the same way, never silently.
    with pytest.raises(MerkleError, match="no complete subtree"):
        merkle.inclusion_proof(0, 6, store)


def test_a_store_returning_a_malformed_node_is_caught() -> None:
    class Broken:
        def node(self, level: int, index: int) -> bytes:
            return b"short"

    with pytest.raises(MerkleError, match="stored node at level 0 index 1 is 5 bytes long"):
        merkle.inclusion_proof(0, 2, Broken())
