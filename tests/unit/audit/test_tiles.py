"""The tlog-tiles layout: paths in their one spelling, widths per the spec, entry bundles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsign.audit.tiles import (
    TILE_WIDTH,
    TileError,
    TileRef,
    decode_entry_bundle,
    encode_entry_bundle,
    entry_bundles,
    parse_tile_path,
    tile_path,
    tile_width,
)


@pytest.mark.parametrize(
    ("level", "index", "width", "path"),
    [
        (0, 0, 256, "tile/0/000"),
        (0, 1234067, 256, "tile/0/x001/x234/067"),  # the spec's example
        (1, 1, 17, "tile/1/001.p/17"),
        (2, 0, 1, "tile/2/000.p/1"),
        (None, 999, 256, "tile/entries/999"),
        (None, 1000, 5, "tile/entries/x001/000.p/5"),
        (63, 123456789, 255, "tile/63/x123/x456/789.p/255"),
    ],
)
def test_paths_are_spelled_as_the_spec_spells_them(
    level: int | None, index: int, width: int, path: str
) -> None:
    assert tile_path(level, index, width) == path
    assert parse_tile_path(path.removeprefix("tile/")) == TileRef(level, index, width)


@pytest.mark.parametrize(
    "path",
    [
        "0/00",  # index not in 3-digit groups
        "0/0000",
        "0/x001",  # the last group has no x
        "0/001/234",  # only the last group lacks an x
        "0/x000/001",  # a leading zero group: 1 has one spelling, 001
        "00/000",  # a leading zero on the level
        "64/000",  # levels are 0 to 63
        "-1/000",
        "data/000",  # Go sumdb's name; tlog-tiles says entries
        "0/000.p/0",
        "0/000.p/256",  # a full tile has no .p
        "0/000.p/07",
        "0/000.p/",
        "0/000/",
        "8/0/000",  # Go sumdb's path, with the height
        "entries/000.p/300",
        "",
    ],
)
def test_every_other_spelling_is_refused(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


@given(
    st.one_of(st.none(), st.integers(0, 63)),
    st.integers(0, 10**12),
    st.integers(1, TILE_WIDTH),
)
def test_path_and_parse_are_inverse(level: int | None, index: int, width: int) -> None:
    ref = TileRef(level, index, width)
    assert parse_tile_path(ref.path.removeprefix("tile/")) == ref


def test_widths_of_the_spec_example() -> None:
    """A tree of 70,000: 273 full level-0 tiles and one of 112, one full level-1 tile and
    one of 17, one level-2 tile of 1 (c2sp.org/tlog-tiles, "Partial Tiles")."""
    size = 70_000
    assert [tile_width(size, 0, n) for n in (0, 272, 273, 274)] == [256, 256, 112, 0]
    assert [tile_width(size, 1, n) for n in (0, 1, 2)] == [256, 17, 0]
    assert [tile_width(size, 2, n) for n in (0, 1)] == [1, 0]
    assert tile_width(size, 3, 0) == 0
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level
    # 1 tile of width 1"
    assert (tile_width(256, 0, 0), tile_width(256, 0, 1), tile_width(256, 1, 0)) == (256, 0, 1)
    assert tile_width(0, 0, 0) == 0  # empty tiles are never served


def test_entry_bundles_cover_the_tree_once() -> None:
    assert list(entry_bundles(0)) == []
    assert [(b.index, b.width) for b in entry_bundles(256)] == [(0, 256)]
    assert [(b.index, b.width) for b in entry_bundles(600)] == [(0, 256), (1, 256), (2, 88)]
    assert all(b.is_entries for b in entry_bundles(600))


def test_an_entry_bundle_is_uint16_length_prefixed_entries() -> None:
    entries = [bytes([n]) * 32 for n in range(3)]
    data = encode_entry_bundle(entries)
    assert data[:2] == b"\x00\x20"
    assert data == b"".join(b"\x00\x20" + e for e in entries)
    assert decode_entry_bundle(data, 3) == entries
    assert encode_entry_bundle([b"", b"\xff" * 300]) == b"\x00\x00\x01\x2c" + b"\xff" * 300


@pytest.mark.parametrize(
    ("data", "width", "message"),
    [
        (b"\x00", 1, "ends inside the length of entry 0"),
        (b"\x00\x20" + bytes(31), 1, "ends inside entry 0"),
        (b"\x00\x01a\x00\x01b", 1, "holds 2 entries, not 1"),
        (b"", 1, "holds 0 entries, not 1"),
    ],
)
def test_a_malformed_bundle_is_refused(data: bytes, width: int, message: str) -> None:
    with pytest.raises(TileError, match=message):
        decode_entry_bundle(data, width)


def test_an_entry_too_long_for_its_length_prefix_is_refused() -> None:
    with pytest.raises(TileError, match="at most 65,535 bytes"):
        encode_entry_bundle([bytes(65_536)])
