// Command tilecheck reads a petition log served in the C2SP tlog-tiles layout with Go's
// own checksum-database packages (golang.org/x/mod/sumdb/note and sumdb/tlog), which
// anonsign did not write, and says whether the tiles, the entry bundles and the signed
// checkpoint agree.
//
//	tilecheck PREFIX VERIFIER-KEY
//
// PREFIX is the log's address (http://host/p/<slug>), VERIFIER-KEY the log's verifier key
// line. It checks, exiting 1 with one line on the first failure:
//
//   - the checkpoint is a note signed by that key, and its origin, size and root parse;
//   - the root computed by tlog.TreeHash from the served hash tiles alone (no entry read)
//     is the checkpoint's root, and tlog.TileHashReader (which authenticates every tile
//     it reads against that root) gives it too;
//   - every entry bundle parses (big-endian uint16 length-prefixed entries), and each
//     entry's tlog.RecordHash is the hash at its place in the served level-0 tile;
//   - every tile of the tree (tlog.NewTiles), full and partial, is byte for byte the tile
//     tlog.ReadTileData computes from the entries.
//
// Built offline against Debian's golang-golang-x-mod-dev: GO111MODULE=off
// GOPATH=/usr/share/gocode go build.
package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tilecheck: "+format+"\n", args...)
	os.Exit(1)
}

func get(url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		fail("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return body
}

// c2spPath is a tile's tlog-tiles path: Go's sumdb path without its height element, and
// "entries" where sumdb says "data".
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", height))
	return "tile/" + strings.Replace(p, "data/", "entries/", 1)
}

// server reads tiles over HTTP, as a tlog.TileReader.
type server struct {
	prefix string
	reads  int
}

func (s *server) Height() int { return height }

func (s *server) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		out[i] = get(s.prefix + "/" + c2spPath(t))
		s.reads++
	}
	return out, nil
}

func (s *server) SaveTiles([]tlog.Tile, [][]byte) {}

// fromTiles answers hash reads from the served tiles, trusting them (no authentication):
// what "the root from the tiles alone" means.
type fromTiles struct{ s *server }

func (f fromTiles) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, index := range indexes {
		t := tlog.TileForIndex(height, index)
		data, _ := f.s.ReadTiles([]tlog.Tile{t})
		h, err := tlog.HashFromTile(t, data[0], index)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

func parseCheckpoint(text string) (string, int64, tlog.Hash) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		fail("the checkpoint has fewer than three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		fail("the checkpoint's size %q is not a tree size", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("the checkpoint's root %q is not a base64 SHA-256 hash", lines[2])
	}
	var root tlog.Hash
	copy(root[:], raw)
	return lines[0], size, root
}

func entriesOf(bundle []byte, width int, where string) [][]byte {
	var entries [][]byte
	for len(bundle) > 0 {
		if len(bundle) < 2 {
			fail("%s ends inside a length", where)
		}
		n := int(bundle[0])<<8 | int(bundle[1])
		if len(bundle) < 2+n {
			fail("%s ends inside an entry", where)
		}
		entries = append(entries, bundle[2:2+n])
		bundle = bundle[2+n:]
	}
	if len(entries) != width {
		fail("%s holds %d entries, expected %d", where, len(entries), width)
	}
	return entries
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: tilecheck PREFIX VERIFIER-KEY")
	}
	prefix := strings.TrimRight(os.Args[1], "/")
	verifier, err := note.NewVerifier(strings.TrimSpace(os.Args[2]))
	if err != nil {
		fail("the verifier key: %v", err)
	}
	signed, err := note.Open(get(prefix+"/checkpoint"), note.VerifierList(verifier))
	if err != nil {
		fail("the checkpoint does not verify: %v", err)
	}
	origin, size, root := parseCheckpoint(signed.Text)
	srv := &server{prefix: prefix}

	fromTilesRoot, err := tlog.TreeHash(size, fromTiles{srv})
	if err != nil {
		fail("TreeHash from the tiles: %v", err)
	}
	if fromTilesRoot != root {
		fail("the tiles give root %v, the checkpoint says %v", fromTilesRoot, root)
	}
	authenticated, err := tlog.TreeHash(size, tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, srv))
	if err != nil {
		fail("TileHashReader against the checkpoint: %v", err)
	}
	if authenticated != root {
		fail("TileHashReader gives root %v, the checkpoint says %v", authenticated, root)
	}

	// The entries, bundle by bundle, each against its level-0 tile; and all stored
	// hashes of the tree, as tlog computes them from the entries.
	var stored []tlog.Hash
	memory := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, index := range indexes {
			out[i] = stored[index]
		}
		return out, nil
	})
	bundles := 0
	for n := int64(0); n*(1<<height) < size; n++ {
		width := size - n*(1<<height)
		if width > 1<<height {
			width = 1 << height
		}
		bundle := tlog.Tile{H: height, L: -1, N: n, W: int(width)}
		where := c2spPath(bundle)
		entries := entriesOf(get(prefix+"/"+where), int(width), where)
		leaves := tlog.Tile{H: height, L: 0, N: n, W: int(width)}
		leafData, _ := srv.ReadTiles([]tlog.Tile{leaves})
		for i, entry := range entries {
			index := n*(1<<height) + int64(i)
			want, err := tlog.HashFromTile(leaves, leafData[0], tlog.StoredHashIndex(0, index))
			if err != nil {
				fail("%s: %v", c2spPath(leaves), err)
			}
			if tlog.RecordHash(entry) != want {
				fail("entry %d of %s does not hash to its place in %s", i, where, c2spPath(leaves))
			}
			hashes, err := tlog.StoredHashes(index, entry, memory)
			if err != nil {
				fail("StoredHashes: %v", err)
			}
			stored = append(stored, hashes...)
		}
		bundles++
	}
	tiles := tlog.NewTiles(height, 0, size)
	for _, t := range tiles {
		want, err := tlog.ReadTileData(t, memory)
		if err != nil {
			fail("ReadTileData %s: %v", c2spPath(t), err)
		}
		got, _ := srv.ReadTiles([]tlog.Tile{t})
		if !bytes.Equal(got[0], want) {
			fail("%s differs from the tile computed from the entries", c2spPath(t))
		}
	}
	fmt.Printf("OK %s size %d root %s: %d entry bundles, %d tiles, %d tile reads\n",
		origin, size, base64.StdEncoding.EncodeToString(root[:]), bundles, len(tiles), srv.reads)
}
