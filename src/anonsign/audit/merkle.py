"""The petition log's Merkle tree: hashing, compact ranges, proofs and their verification.

Each petition's log is an append-only list of entries (one accepted signature's 32-byte
dedup key each), committed to by the Merkle Tree Hash of RFC 9162 §2.1.1 (the same tree
as RFC 6962 and C2SP ``merkle-tree.md``)::

    MTH({})     = SHA-256("")
    leaf hash   = SHA-256(0x00 || entry)
    node hash   = SHA-256(0x01 || left || right)
    MTH(D[n])   = node hash(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n

This module owns four things, and nothing else:

* hashing: :func:`leaf_hash`, :func:`node_hash`, :func:`empty_root`, :func:`root`;
* :class:`CompactRange`, the right frontier of the tree (one perfect-subtree root per set
  bit of the size), which lets the server append in O(log n) and publish a root without
  rehashing the log;
* proof *generation* for the server (:func:`inclusion_proof`, :func:`consistency_proof`,
  :func:`tree_root`) over any :class:`NodeReader` that stores the roots of complete
  subtrees, reading O(log n) nodes per proof;
* proof *verification* for auditors and signers (:func:`verify_inclusion`,
  :func:`verify_consistency`), written step by step from RFC 9162 §2.1.3.2 and §2.1.4.2
  and checked against the transparency-dev/merkle test vectors.

It must stay importable by an auditor with nothing but the standard library and
pyca/cryptography: it imports no web framework, no database layer and nothing from
anonsign except :mod:`anonsign.errors`. Every failure is a :class:`MerkleError` whose
message names what was expected and what was found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from cryptography.hazmat.primitives import hashes

from anonsign.errors import MerkleError

__all__ = [
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "CompactRange",
    "MemoryNodeStore",
    "MerkleError",
    "Node",
    "NodeReader",
    "consistency_proof",
    "empty_root",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_consistency",
    "root_from_inclusion",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

#: Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1): a leaf can never be
#: passed off as an interior node, nor the reverse.
LEAF_PREFIX = b"\x00"
#: Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
NODE_PREFIX = b"\x01"
#: Size in bytes of every hash in the tree (SHA-256).
HASH_SIZE = 32

# Hash contexts that have already absorbed their prefix; each hash copies one. Copying a
# context only reads it (never updates it), so sharing these between threads is safe,
# and it halves the cost of a hash (the 1,000,000-leaf audit does a million of them).
_LEAF_CTX = hashes.Hash(hashes.SHA256())
_LEAF_CTX.update(LEAF_PREFIX)
_NODE_CTX = hashes.Hash(hashes.SHA256())
_NODE_CTX.update(NODE_PREFIX)


# --- hashing ------------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """Return the leaf hash of one log entry: SHA-256(0x00 || entry)."""
    ctx = _LEAF_CTX.copy()
    ctx.update(entry)
    return ctx.finalize()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an interior node: SHA-256(0x01 || left || right)."""
    _check_hash("left child hash", left)
    _check_hash("right child hash", right)
    return _node(left, right)


def empty_root() -> bytes:
    """Return the root of the empty tree, MTH({}) = SHA-256("")."""
    return hashes.Hash(hashes.SHA256()).finalize()


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """Return the Merkle Tree Hash over already-hashed leaves, in order.

    Folds the leaves into a compact range as they stream past, so it makes n - 1 node
    hashes, holds O(log n) hashes in memory and accepts any iterable (a list, or a
    generator reading an export). Equal to the recursive MTH of RFC 9162 §2.1.1.
    """
    frontier: list[bytes] = []
    _fold(frontier, 0, leaf_hashes)
    return _fold_frontier(frontier)


def _node(left: bytes, right: bytes) -> bytes:
    ctx = _NODE_CTX.copy()
    ctx.update(left)
    ctx.update(right)
    return ctx.finalize()


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleError(f"{what} is {len(value)} bytes long, expected {HASH_SIZE}")


def _check_size(what: str, value: int) -> None:
    if value < 0:
        raise MerkleError(f"{what} is {value}, expected a number of leaves (0 or more)")


def _fold(frontier: list[bytes], size: int, leaf_hashes: Iterable[bytes]) -> int:
    """Append leaf hashes to the frontier of a tree of ``size`` leaves; return the new size.

    The frontier holds the roots of the perfect subtrees that make up the tree, largest
    (leftmost) first, one per set bit of the size. Adding a leaf whose 1-based position has
    t trailing zero bits completes t subtrees, so it merges t times: n - 1 merges in all.
    """
    copy = _NODE_CTX.copy
    append = frontier.append
    pop = frontier.pop
    for value in leaf_hashes:
        if len(value) != HASH_SIZE:
            raise MerkleError(f"leaf hash {size} is {len(value)} bytes long, expected {HASH_SIZE}")
        size += 1
        merges = size
        while not merges & 1:
            ctx = copy()
            ctx.update(pop())
            ctx.update(value)
            value = ctx.finalize()
            merges >>= 1
        append(value)
    return size


def _fold_frontier(frontier: Sequence[bytes]) -> bytes:
    """Combine perfect-subtree roots, largest first, into the root of their whole range.

    The left child of every MTH split is the largest perfect subtree, so the root is
    node(f[0], node(f[1], ... node(f[-2], f[-1]))): fold from the right.
    """
    if not frontier:
        return empty_root()
    result = frontier[-1]
    for left in reversed(frontier[:-1]):
        result = _node(left, result)
    return result


# --- the right frontier -------------------------------------------------------------------


#: One complete (perfect) subtree root as a store keeps it: (level, index, hash). It covers
#: leaves ``index * 2**level`` up to, not including, ``(index + 1) * 2**level``; level 0
#: holds the leaf hashes themselves. A complete subtree never changes, so its row is final.
Node = tuple[int, int, bytes]


class CompactRange:
    """The right frontier of a log of ``size`` leaves: one perfect-subtree root per set bit.

    This is all the server needs to append a leaf (O(log n) hashes at worst, 1 on average)
    and to publish the root, without reading the log. :meth:`to_list` and
    :meth:`from_list` turn it into plain hashes (largest subtree first) for a store; the
    store keeps the size beside them.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @classmethod
    def from_list(cls, size: int, frontier: Sequence[bytes]) -> CompactRange:
        """Rebuild the frontier of a tree of ``size`` leaves from its :meth:`to_list`."""
        _check_size("tree size", size)
        want = size.bit_count()
        if len(frontier) != want:
            raise MerkleError(
                f"a tree of size {size} has {want} frontier hashes, got {len(frontier)}"
            )
        for i, value in enumerate(frontier):
            _check_hash(f"frontier hash {i}", value)
        compact = cls()
        compact._size = size
        compact._frontier = [bytes(value) for value in frontier]
        return compact

    def to_list(self) -> list[bytes]:
        """Return the perfect-subtree roots, largest (leftmost) first."""
        return list(self._frontier)

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Append one leaf hash; return the nodes it completed, the leaf itself first.

        A node store persists exactly these rows to serve proofs later (see
        :class:`NodeReader`); a caller that only needs the root ignores them.
        """
        _check_hash(f"leaf hash {self._size}", leaf_hash)
        index = self._size
        completed: list[Node] = [(0, index, leaf_hash)]
        value = leaf_hash
        level = 0
        while index & 1:
            value = _node(self._frontier.pop(), value)
            index >>= 1
            level += 1
            completed.append((level, index, value))
        self._frontier.append(value)
        self._size += 1
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes, in order (faster than :meth:`append` one by one)."""
        # Work on a copy so that a bad hash half-way leaves this range unchanged.
        frontier = list(self._frontier)
        self._size = _fold(frontier, self._size, leaf_hashes)
        self._frontier = frontier

    def root(self) -> bytes:
        """Return the Merkle Tree Hash of the leaves appended so far."""
        return _fold_frontier(self._frontier)

    def copy(self) -> CompactRange:
        """Return an independent copy (to compute a root ahead without committing)."""
        return CompactRange.from_list(self._size, self._frontier)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


# --- proof generation (server side) -------------------------------------------------------


class NodeReader(Protocol):
    """Where proof generation reads the roots of complete subtrees.

    ``node(level, index)`` returns the hash of the perfect subtree of ``2**level`` leaves
    starting at leaf ``index * 2**level`` (level 0: the leaf hashes). Only complete
    subtrees exist; proof generation never asks for one that extends past the tree size
    it was given. A store fills itself from :meth:`CompactRange.append`.
    """

    def node(self, level: int, index: int) -> bytes: ...


def tree_root(size: int, reader: NodeReader) -> bytes:
    """Return the root of the first ``size`` leaves of the store, in O(log n) reads."""
    _check_size("tree size", size)
    return _range_root(0, size, reader)


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """Return PATH(index, D[size]) of RFC 9162 §2.1.3.1, reading O(log n) nodes.

    Proof hashes are ordered from the leaf up, as :func:`verify_inclusion` consumes them.
    """
    _check_size("tree size", size)
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is not in a tree of size {size}")
    # Walk down from the root, keeping the subtree [begin, end) that holds the leaf, and
    # take the sibling of each step. Only the first right sibling met can be a
    # non-perfect subtree (everything below a left turn is perfect), so this reads at most
    # log2(n) + popcount(n) nodes.
    siblings: list[bytes] = []
    begin, end = 0, size
    while end - begin > 1:
        k = _split(end - begin)
        if index < begin + k:
            siblings.append(_range_root(begin + k, end, reader))
            end = begin + k
        else:
            siblings.append(_perfect_root(begin, k, reader))
            begin += k
    siblings.reverse()
    return siblings


def consistency_proof(old_size: int, new_size: int, reader: NodeReader) -> list[bytes]:
    """Return PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1, reading O(log n) nodes.

    Same sizes give the empty proof. A proof from the empty tree is refused, as
    :func:`verify_consistency` would refuse it: it proves nothing.
    """
    _check_size("old tree size", old_size)
    _check_size("new tree size", new_size)
    if old_size > new_size:
        raise MerkleError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0:
        raise MerkleError(
            "a consistency proof from the empty tree (size 0) proves nothing; "
            "ask for one from a tree of size 1 or more"
        )
    # SUBPROOF(m, D[begin:end], complete), unrolled: each step appends the hash of the
    # subtree the old tree does not descend into; they come out root-first, and the RFC
    # lists them leaf-first.
    proof: list[bytes] = []
    begin, end, m, complete = 0, new_size, old_size, True
    while m != end - begin:
        k = _split(end - begin)
        if m <= k:
            proof.append(_range_root(begin + k, end, reader))
            end = begin + k
        else:
            proof.append(_perfect_root(begin, k, reader))
            begin += k
            m -= k
            complete = False
    if not complete:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}. Only right subtrees are entered with
        # complete=False, and never with m equal to their size, so this one is perfect.
        proof.append(_range_root(begin, end, reader))
    proof.reverse()
    return proof


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where MTH splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_root(begin: int, width: int, reader: NodeReader) -> bytes:
    level = width.bit_length() - 1
    value = reader.node(level, begin >> level)
    _check_hash(f"stored node at level {level} index {begin >> level}", value)
    return value


def _range_root(begin: int, end: int, reader: NodeReader) -> bytes:
    """MTH(D[begin:end]) for a subtree that appears in the MTH recursion.

    Such a subtree starts at a multiple of a power of two at least its width, so it splits
    into aligned perfect subtrees, one per set bit of its width: popcount(width) reads.
    """
    frontier: list[bytes] = []
    remaining = end - begin
    while remaining:
        width = 1 << (remaining.bit_length() - 1)
        frontier.append(_perfect_root(begin, width, reader))
        begin += width
        remaining -= width
    return _fold_frontier(frontier)


class MemoryNodeStore:
    """A :class:`NodeReader` in memory: every complete subtree's root, one list per level.

    For tests and benchmarks; the database store keeps the same (level, index) -> hash
    rows, taken from :meth:`CompactRange.append`.
    """

    __slots__ = ("_frontier", "_levels")

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []
        self._frontier = CompactRange()

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._frontier.size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash and keep every subtree it completes."""
        for level, _index, value in self._frontier.append(leaf_hash):
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(value)

    def root(self) -> bytes:
        """Return the Merkle Tree Hash of all the leaves appended so far."""
        return self._frontier.root()

    def node(self, level: int, index: int) -> bytes:
        """Return the root of the complete subtree at (level, index)."""
        if 0 <= level < len(self._levels) and 0 <= index < len(self._levels[level]):
            return self._levels[level][index]
        raise MerkleError(
            f"no complete subtree at level {level} index {index} in a log of {self.size} leaves"
        )


# --- proof verification (auditor and signer side) -----------------------------------------


def _inclusion_proof_size(index: int, size: int) -> int:
    """How many hashes PATH(index, D[size]) has (0 <= index < size).

    Below the level where the paths to ``index`` and to the last leaf part, the proof
    climbs one hash per level; above it, one hash per left subtree on the border.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_proof_size(old_size: int, new_size: int) -> int:
    """How many hashes PROOF(old_size, D[new_size]) has (0 < old_size < new_size)."""
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    inner = ((old_size - 1) ^ (new_size - 1)).bit_length()
    border = ((old_size - 1) >> inner).bit_count()
    # When old_size is a power of two its root is a node of the new tree and the verifier
    # supplies it itself (RFC 9162 §2.1.4.2 step 2); otherwise the proof starts with it.
    seed = 0 if old_size == 1 << shift else 1
    return seed + inner - shift + border


def _check_proof(kind: str, proof: Sequence[bytes]) -> None:
    for i, value in enumerate(proof):
        _check_hash(f"{kind} proof hash {i}", value)


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root that an inclusion proof leads to, per RFC 9162 §2.1.3.2.

    Raises :class:`MerkleError` if the proof is malformed for this index and size; the
    caller compares the result with a root it trusts (see :func:`verify_inclusion`).
    """
    _check_size("tree size", size)
    _check_hash("leaf hash", leaf_hash)
    _check_proof("inclusion", proof)

    def wrong_length() -> MerkleError:
        want = _inclusion_proof_size(index, size)
        return MerkleError(
            f"inclusion proof has {len(proof)} hashes, expected {want} "
            f"for leaf {index} in a tree of size {size}"
        )

    # 1. If leaf_index is greater than or equal to tree_size, fail.
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is not in a tree of size {size}")
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, size - 1
    # 3. Set r to hash.
    r = leaf_hash
    # 4. For each value p in the inclusion_path array:
    for p in proof:
        # a. If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise wrong_length()
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = _node(p, r)
            # ii. If LSB(fn) is not set, right-shift both fn and sn equally until either
            #     LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # Otherwise: i. Set r to HASH(0x01 || r || p).
        else:
            r = _node(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0 (and r to the root: the caller's part).
    if sn != 0:
        raise wrong_length()
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 §2.1.3.2. Returns nothing; raises :class:`MerkleError` naming the first thing
    that failed. The proof binds the leaf's position but not the tree size: a tree head
    must sign the size and root together (C2SP tlog-checkpoint does).
    """
    _check_hash("root", root)
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if computed != root:
        raise MerkleError(
            f"inclusion proof for leaf {index} does not lead to the root of the tree of "
            f"size {size}: computed {computed.hex()}, expected {root.hex()}"
        )


def root_from_consistency(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the new root a consistency proof leads to from a trusted old root.

    RFC 9162 §2.1.4.2, with the strictness of the transparency-dev vectors: the old size
    must be 1 or more (a proof from the empty tree proves nothing), equal sizes take the
    empty proof. Raises :class:`MerkleError` if the proof is malformed or does not
    reproduce ``old_root``.
    """
    _check_size("old tree size", old_size)
    _check_size("new tree size", new_size)
    if old_size > new_size:
        raise MerkleError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0:
        raise MerkleError(
            "a consistency proof from the empty tree (size 0) proves nothing; "
            "check from a tree of size 1 or more"
        )
    if old_size == new_size:
        if proof:
            raise MerkleError(
                f"consistency proof has {len(proof)} hashes, expected 0 "
                f"between two trees of the same size {old_size}"
            )
        return old_root
    _check_hash("old root", old_root)
    _check_proof("consistency", proof)

    def wrong_length() -> MerkleError:
        want = _consistency_proof_size(old_size, new_size)
        return MerkleError(
            f"consistency proof has {len(proof)} hashes, expected {want} "
            f"from tree size {old_size} to {new_size}"
        )

    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not proof:
        raise wrong_length()
    # 2. If first is an exact power of 2, prepend first_hash to the consistency_path.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. If LSB(fn) is set, right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            raise wrong_length()
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr).  ii. Set sr to HASH(0x01 || c || sr).
            fr = _node(c, fr)
            sr = _node(c, sr)
            # iii. If LSB(fn) is not set, right-shift both fn and sn equally until either
            #      LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # Otherwise: i. Set sr to HASH(0x01 || sr || c).
        else:
            sr = _node(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify that sn is 0, that fr equals first_hash (and sr second_hash: the
    #    caller's part).
    if sn != 0:
        raise wrong_length()
    if fr != old_root:
        raise MerkleError(
            f"consistency proof from tree size {old_size} to {new_size} does not lead to "
            f"the old root: computed {fr.hex()}, expected {old_root.hex()}"
        )
    return sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` leaves extends the tree of ``old_size`` leaves.

    RFC 9162 §2.1.4.2: the first ``old_size`` entries of the new tree are exactly the old
    tree's, so the log only grew by appending. Returns nothing; raises
    :class:`MerkleError` naming the first thing that failed.
    """
    computed = root_from_consistency(old_size, new_size, old_root, proof)
    if old_size == new_size:
        # Same size: nothing to hash, the two roots must simply be the same bytes.
        if old_root != new_root:
            raise MerkleError(
                f"two trees of the same size {old_size} have different roots: "
                f"{old_root.hex()} and {new_root.hex()}"
            )
        return
    _check_hash("new root", new_root)
    if computed != new_root:
        raise MerkleError(
            f"consistency proof from tree size {old_size} to {new_size} does not lead to "
            f"the new root: computed {computed.hex()}, expected {new_root.hex()}"
        )
