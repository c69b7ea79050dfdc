package export

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/tlog"
)

// Frame tags of the mirror sections (version 2).
const (
	tagMirrorHead   = 'M'
	tagMirrorTile   = 'T'
	tagMirrorRecord = 'C'
)

// Bounds of the mirror sections, those of the store's mirror tables.
const (
	maxMirrorDB   = 200
	maxMirrorData = 1 << 20 // a data tile
	maxMirrorTag  = 1 + binary.MaxVarintLen64 + maxMirrorDB
	tileHeight    = 8
	maxTileLevel  = 7
)

// maxMirrorBytes bounds the bytes of one mirrored database's section that
// Import holds to verify it before storing any of it. A variable for the
// tests.
var maxMirrorBytes = 1 << 30

// A MirrorStore is a store that also keeps the verified cache of mirrored
// checksum databases (package sumdb/mirror): both stores of package store
// are. Write exports that cache, and Import verifies and stores it.
type MirrorStore interface {
	MirrorDatabases(ctx context.Context) ([]string, error)
	ScanMirrorTiles(ctx context.Context, db string, f func(level int, index int64, data []byte) error) error
	ScanMirrorRecords(ctx context.Context, db string, f func(id int64, text []byte) error) error
	ReadMirrorTile(ctx context.Context, db string, level int, index int64) ([]byte, error)
	PutMirrorTile(ctx context.Context, db string, level int, index int64, data []byte) error
	PutMirrorRecord(ctx context.Context, db, path, version string, id int64, text []byte) error
	ReadState(ctx context.Context, name string) ([]byte, error)
	SwapState(ctx context.Context, name string, old, new []byte) error
}

// MirrorHeadState is the name of the state that holds the newest verified
// head (its signed note) of the mirrored database db.
func MirrorHeadState(db string) string { return "mirror/" + db + "/latest" }

// A MirrorSummary tells what Write wrote, or Import stored, of the cache of
// one mirrored database.
type MirrorSummary struct {
	DB      string
	Size    int64 // the size of the tree of the head written or stored; 0 if NoHead
	Tiles   int64 // tiles written or stored
	Records int64 // records written or stored
	// Unproved counts the tiles and records of the file that Import left
	// out because the file holds too narrow a tile to prove them against
	// the head (a cache filled at an older head): nothing is stored that
	// is not proved.
	Unproved int64
	// NoHead is set by Write for a database whose cache has no verified
	// head, which it leaves out: nothing of it could be verified.
	NoHead bool
}

// appendString appends s, preceded by its length.
func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// cutString returns the string that p begins with (as appendString wrote
// it, of at most max bytes) and the rest of p.
func cutString(p []byte, max int) (string, []byte, bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(max) || n > uint64(len(p)-k) {
		return "", nil, false
	}
	return string(p[k : k+int(n)]), p[k+int(n):], true
}

// treeWidth returns the number of entries of tile index of level (of height
// 8) in a tree of size n: 0 if the tree does not reach it.
func treeWidth(n int64, level int, index int64) int64 {
	count := n >> (tileHeight * level)
	if index > count/tlog.TileWidth {
		return 0
	}
	return min(count-index*tlog.TileWidth, tlog.TileWidth)
}

// cutRecords returns the first w records of a data tile (each followed by a
// blank line), or data if it holds fewer.
func cutRecords(data []byte, w int64) []byte {
	end := 0
	for ; w > 0; w-- {
		i := bytes.Index(data[end:], []byte("\n\n"))
		if i < 0 {
			return data
		}
		end += i + 2
	}
	return data[:end]
}

// splitRecords splits a data tile into its records' texts, each with its
// final newline, or returns an error if a record does not end with a blank
// line or there are more than tlog.TileWidth.
func splitRecords(data []byte) ([][]byte, error) {
	var texts [][]byte
	for rest := data; len(rest) > 0; {
		i := bytes.Index(rest, []byte("\n\n"))
		if i < 0 || len(texts) == tlog.TileWidth {
			return nil, fmt.Errorf("not %d records or fewer, each followed by a blank line", tlog.TileWidth)
		}
		texts = append(texts, rest[:i+1])
		rest = rest[i+2:]
	}
	return texts, nil
}

// A mirrorCounts counts the frames of the mirror sections.
type mirrorCounts struct{ heads, tiles, records int64 }

// writeMirrors writes the mirror sections of the cache in ms: for each
// database with a verified head, that head, then its tiles and records
// that the head's tree holds (a tile cut to the head's width).
func writeMirrors(ctx context.Context, bw *bufio.Writer, ms MirrorStore) ([]MirrorSummary, mirrorCounts, error) {
	var counts mirrorCounts
	dbs, err := ms.MirrorDatabases(ctx)
	if err != nil {
		return nil, counts, fmt.Errorf("export: %w", err)
	}
	var list []MirrorSummary
	for _, db := range dbs {
		sum := MirrorSummary{DB: db}
		msg, err := ms.ReadState(ctx, MirrorHeadState(db))
		if err != nil {
			return nil, counts, fmt.Errorf("export: mirror of %s: %w", db, err)
		}
		if msg == nil {
			sum.NoHead = true
			list = append(list, sum)
			continue
		}
		tree, err := parseHead(msg)
		if err != nil {
			return nil, counts, fmt.Errorf("export: mirror of %s: the stored head %s is not a signed tree head: %w: the database is damaged", db, MirrorHeadState(db), err)
		}
		sum.Size = tree.N
		if err := writeFrame(bw, tagMirrorHead, append(appendString(nil, db), msg...)); err != nil {
			return nil, counts, fmt.Errorf("export: write: %w", err)
		}
		counts.heads++
		var buf []byte
		err = ms.ScanMirrorTiles(ctx, db, func(level int, index int64, data []byte) error {
			l := max(level, 0)
			w := treeWidth(tree.N, l, index)
			switch {
			case w == 0:
				return nil // beyond the head: verified against a newer one
			case level < 0:
				data = cutRecords(data, w)
			default:
				data = data[:min(int64(len(data)), 32*w)]
			}
			buf = appendString(buf[:0], db)
			buf = binary.AppendVarint(buf, int64(level))
			buf = binary.AppendUvarint(buf, uint64(index))
			buf = append(buf, data...)
			sum.Tiles++
			return writeFrame(bw, tagMirrorTile, buf)
		})
		if err != nil {
			return nil, counts, fmt.Errorf("export: mirror of %s: %w", db, err)
		}
		err = ms.ScanMirrorRecords(ctx, db, func(id int64, text []byte) error {
			if id >= tree.N {
				return nil
			}
			path, version, err := parseRecord(text)
			if err != nil {
				return fmt.Errorf("record %d: %w: the database is damaged", id, err)
			}
			buf = appendString(buf[:0], db)
			buf = binary.AppendUvarint(buf, uint64(id))
			buf = appendString(buf, path)
			buf = appendString(buf, version)
			buf = append(buf, text...)
			sum.Records++
			return writeFrame(bw, tagMirrorRecord, buf)
		})
		if err != nil {
			return nil, counts, fmt.Errorf("export: mirror of %s: %w", db, err)
		}
		counts.tiles += sum.Tiles
		counts.records += sum.Records
		list = append(list, sum)
	}
	return list, counts, nil
}

// A tileKey names a tile of a mirrored log: level -1 for a data tile.
type tileKey struct {
	level int
	index int64
}

// A mirrorRecord is a record of a mirror section.
type mirrorRecord struct {
	id            int64
	path, version string
	text          []byte
}

// A mirrorSection is the mirror section of one database, as read.
type mirrorSection struct {
	db      string
	note    []byte
	tiles   map[tileKey][]byte
	records []mirrorRecord
	bytes   int
}

// A mirrorParser collects the mirror sections of a file.
type mirrorParser struct {
	keys     map[string]note.Verifier // the verifiers of the databases whose sections may be imported
	canStore bool                     // the store is a MirrorStore
	sections []*mirrorSection
	seen     map[string]bool
	counts   mirrorCounts
}

// frame adds the mirror frame (tag, payload) to the sections.
func (m *mirrorParser) frame(tag byte, payload []byte) error {
	db, rest, ok := cutString(payload, maxMirrorDB)
	if !ok || db == "" {
		return fmt.Errorf("mirror frame %q without a database name: the file is damaged", tag)
	}
	if tag == tagMirrorHead {
		if m.seen[db] {
			return fmt.Errorf("the mirror of %s appears twice: the file is damaged", db)
		}
		if !m.canStore {
			return errNoMirrorStore
		}
		if m.keys[db] == nil {
			return missingKey(db)
		}
		if m.seen == nil {
			m.seen = make(map[string]bool)
		}
		m.seen[db] = true
		m.counts.heads++
		m.sections = append(m.sections, &mirrorSection{db: db, note: bytes.Clone(rest), tiles: make(map[tileKey][]byte), bytes: len(rest)})
		return nil
	}
	if len(m.sections) == 0 || m.sections[len(m.sections)-1].db != db {
		return fmt.Errorf("a tile or record of the mirror of %s outside its section: the file is damaged", db)
	}
	sec := m.sections[len(m.sections)-1]
	sec.bytes += len(payload)
	if sec.bytes > maxMirrorBytes {
		return fmt.Errorf("the mirror of %s holds more than %d bytes, more than an import holds to verify them", db, maxMirrorBytes)
	}
	switch tag {
	case tagMirrorTile:
		level, k := binary.Varint(rest)
		if k <= 0 {
			return fmt.Errorf("a tile of the mirror of %s: malformed: the file is damaged", db)
		}
		index, k2 := binary.Uvarint(rest[k:])
		if k2 <= 0 || level < -1 || level > maxTileLevel || index > 1<<62 {
			return fmt.Errorf("a tile of the mirror of %s: malformed: the file is damaged", db)
		}
		key := tileKey{int(level), int64(index)}
		data := rest[k+k2:]
		n := len(data)
		if (key.level >= 0 && (n == 0 || n%32 != 0 || n > 32*tlog.TileWidth)) || (key.level < 0 && (n == 0 || n > maxMirrorData)) {
			return fmt.Errorf("tile %d/%d of the mirror of %s has %d bytes, which no tile has: the file is damaged", key.level, key.index, db, n)
		}
		if sec.tiles[key] != nil {
			return fmt.Errorf("tile %d/%d of the mirror of %s appears twice: the file is damaged", key.level, key.index, db)
		}
		sec.tiles[key] = bytes.Clone(data)
		m.counts.tiles++
	case tagMirrorRecord:
		id, k := binary.Uvarint(rest)
		if k <= 0 || id > 1<<62 {
			return fmt.Errorf("a record of the mirror of %s: malformed: the file is damaged", db)
		}
		path, rest, ok := cutString(rest[k:], maxRecord)
		version, text, ok2 := cutString(rest, maxRecord)
		if !ok || !ok2 {
			return fmt.Errorf("a record of the mirror of %s: malformed: the file is damaged", db)
		}
		p, v, err := parseRecord(text)
		if err != nil || p != path || v != version {
			return fmt.Errorf("record %d (%s@%s) of the mirror of %s: its text is not the go.sum lines of %s@%s: the file is damaged", id, path, version, db, path, version)
		}
		sec.records = append(sec.records, mirrorRecord{id: int64(id), path: path, version: version, text: bytes.Clone(text)})
		m.counts.records++
	}
	return nil
}

// errMissingTile is the error of a tile that neither the file nor the store
// holds wide enough to prove what it is asked for.
var errMissingTile = errors.New("neither the file nor the store holds the tile wide enough")

// A mirrorTileReader is the xtlog.TileReader of a mirror section: the
// file's tiles, else the store's (verified against the store's head).
type mirrorTileReader struct {
	ctx   context.Context
	sec   *mirrorSection
	store MirrorStore
}

func (r *mirrorTileReader) Height() int { return tileHeight }

func (r *mirrorTileReader) SaveTiles([]xtlog.Tile, [][]byte) {}

func (r *mirrorTileReader) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		need := t.W * 32
		if data := r.sec.tiles[tileKey{t.L, t.N}]; len(data) >= need {
			out[i] = data[:need]
			continue
		}
		data, err := r.store.ReadMirrorTile(r.ctx, r.sec.db, t.L, t.N)
		if err != nil && !errors.Is(err, tlog.ErrNotFound) {
			return nil, err
		}
		if len(data) < need {
			return nil, fmt.Errorf("tile %d/%d of width %d: %w", t.L, t.N, t.W, errMissingTile)
		}
		out[i] = data[:need]
	}
	return out, nil
}

// A verifiedSection is what Import stores of a mirror section.
type verifiedSection struct {
	sec     *mirrorSection
	tree    xtlog.Tree
	tiles   []tileKey // the proved tiles of sec, in order
	records []mirrorRecord
	sum     MirrorSummary
}

// maxMirrorTree is the largest tree of a mirror head that import accepts:
// client.MaxTreeSize, the bound every client of this module holds heads to
// (the mirror refuses a larger one, and could not open a store that held
// it).
const maxMirrorTree = 1 << 40

// verifySection verifies sec: its head with v, each hash tile against the
// head, each data tile's and record's hashes against the proved level-0
// hashes. A tile or record that the file cannot prove (its tile is too
// narrow) is left out and counted; anything contradicted is an error.
func verifySection(ctx context.Context, sec *mirrorSection, v note.Verifier, store MirrorStore) (*verifiedSection, error) {
	n, err := note.Open(sec.note, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("the head of the mirror of %s does not verify with the key given for it: %w: the file is damaged or forged, or the key is not that database's", sec.db, err)
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("the head of the mirror of %s: %w: the file is damaged", sec.db, err)
	}
	if tree.N > maxMirrorTree {
		return nil, fmt.Errorf("the head of the mirror of %s is of %d records, more than any log holds (at most 2^40): the database is hostile or broken", sec.db, tree.N)
	}
	vs := &verifiedSection{sec: sec, tree: tree, sum: MirrorSummary{DB: sec.db, Size: tree.N}}
	reader := &mirrorTileReader{ctx: ctx, sec: sec, store: store}
	thr := xtlog.TileHashReader(tree, reader)
	keys := slices.SortedFunc(maps.Keys(sec.tiles), func(a, b tileKey) int {
		// Top down, data tiles last: each data tile after the level-0
		// tile that proves its records.
		return cmp.Or(cmp.Compare(b.level, a.level), cmp.Compare(a.index, b.index))
	})
	level0 := make(map[int64]xtlog.Hash)
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data := sec.tiles[k]
		tw := treeWidth(tree.N, max(k.level, 0), k.index)
		if k.level < 0 {
			texts, err := splitRecords(data)
			if err != nil {
				return nil, fmt.Errorf("data tile %d of the mirror of %s: %w: the file is damaged", k.index, sec.db, err)
			}
			if int64(len(texts)) > tw {
				return nil, fmt.Errorf("data tile %d of the mirror of %s holds %d records, beyond its head of size %d: the file is damaged", k.index, sec.db, len(texts), tree.N)
			}
			proved := true
			for i, text := range texts {
				id := k.index*tlog.TileWidth + int64(i)
				h, ok := level0[id]
				if !ok {
					proved = false
					continue
				}
				if xtlog.RecordHash(text) != h {
					return nil, fmt.Errorf("record %d of data tile %d of the mirror of %s does not hash to the leaf of its head of size %d: the file is damaged or forged", id, k.index, sec.db, tree.N)
				}
			}
			if !proved {
				vs.sum.Unproved++
				continue
			}
			vs.tiles = append(vs.tiles, k)
			continue
		}
		w := int64(len(data) / 32)
		if w > tw {
			return nil, fmt.Errorf("tile %d/%d of the mirror of %s has %d hashes, beyond its head of size %d: the file is damaged", k.level, k.index, sec.db, w, tree.N)
		}
		indexes := make([]int64, w)
		for i := range indexes {
			indexes[i] = xtlog.StoredHashIndex(tileHeight*k.level, k.index*tlog.TileWidth+int64(i))
		}
		hashes, err := thr.ReadHashes(indexes)
		if errors.Is(err, errMissingTile) {
			vs.sum.Unproved++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tile %d/%d of the mirror of %s does not verify against its head of size %d: %w: the file is damaged or forged", k.level, k.index, sec.db, tree.N, err)
		}
		for i, h := range hashes {
			if !bytes.Equal(h[:], data[32*i:32*i+32]) {
				return nil, fmt.Errorf("tile %d/%d of the mirror of %s: hash %d differs from the one its head of size %d proves: the file is damaged or forged", k.level, k.index, sec.db, i, tree.N)
			}
			if k.level == 0 {
				level0[k.index*tlog.TileWidth+int64(i)] = h
			}
		}
		vs.tiles = append(vs.tiles, k)
	}
	for _, r := range sec.records {
		if r.id >= tree.N {
			return nil, fmt.Errorf("record %d (%s@%s) of the mirror of %s is beyond its head of size %d: the file is damaged", r.id, r.path, r.version, sec.db, tree.N)
		}
		h, ok := level0[r.id]
		if !ok {
			vs.sum.Unproved++
			continue
		}
		if xtlog.RecordHash(r.text) != h {
			return nil, fmt.Errorf("record %d (%s@%s) of the mirror of %s does not hash to the leaf of its head of size %d: the file is damaged or forged", r.id, r.path, r.version, sec.db, tree.N)
		}
		vs.records = append(vs.records, r)
	}
	return vs, nil
}

// storeSection stores a verified section: its tiles, its records, and its
// head, unless the store holds the same or a newer head, which must be
// consistent with it.
func storeSection(ctx context.Context, vs *verifiedSection, v note.Verifier, store MirrorStore) (MirrorSummary, error) {
	sec, tree := vs.sec, vs.tree
	name := MirrorHeadState(sec.db)
	old, err := store.ReadState(ctx, name)
	if err != nil {
		return vs.sum, fmt.Errorf("the mirror of %s: %w", sec.db, err)
	}
	swap := old == nil
	if old != nil && !bytes.Equal(old, sec.note) {
		n, err := note.Open(old, note.VerifierList(v))
		if err != nil {
			return vs.sum, fmt.Errorf("the store's head of the mirror of %s does not verify with the key given for it (%v): the store mirrors another database of that name; import into another store", sec.db, err)
		}
		stored, err := xtlog.ParseTree([]byte(n.Text))
		if err != nil {
			return vs.sum, fmt.Errorf("the store's head of the mirror of %s: %w", sec.db, err)
		}
		if stored.N > maxMirrorTree {
			return vs.sum, fmt.Errorf("the store's head of the mirror of %s is of %d records, more than any log holds: the store is damaged", sec.db, stored.N)
		}
		if err := consistent(ctx, sec, store, stored, tree); err != nil {
			return vs.sum, err
		}
		swap = tree.N > stored.N
		if !swap {
			vs.sum.Size = stored.N
		}
	}
	for _, k := range vs.tiles {
		if err := store.PutMirrorTile(ctx, sec.db, k.level, k.index, sec.tiles[k]); err != nil {
			return vs.sum, fmt.Errorf("the mirror of %s: %w (the store's cache and the file disagree: one of them is of a fork)", sec.db, err)
		}
		vs.sum.Tiles++
	}
	for _, r := range vs.records {
		if err := store.PutMirrorRecord(ctx, sec.db, r.path, r.version, r.id, r.text); err != nil {
			return vs.sum, fmt.Errorf("the mirror of %s: %w (the store's cache and the file disagree: one of them is of a fork)", sec.db, err)
		}
		vs.sum.Records++
	}
	if swap {
		if err := store.SwapState(ctx, name, old, sec.note); err != nil {
			return vs.sum, fmt.Errorf("the mirror of %s: store its head: %w (is a server using the store? run the import again)", sec.db, err)
		}
	}
	return vs.sum, nil
}

// consistent returns an error unless the trees stored (the store's head)
// and file (the file's) of the mirror of sec.db are one log, proved by the
// tiles of the file or the store.
func consistent(ctx context.Context, sec *mirrorSection, store MirrorStore, stored, file xtlog.Tree) error {
	if stored.N == file.N {
		if stored.Hash != file.Hash {
			return fmt.Errorf("the mirror of %s: the store's head and the file's, both of size %d, have different roots: the database forked; the import is refused", sec.db, file.N)
		}
		return nil
	}
	newer, older := file, stored
	if stored.N > file.N {
		newer, older = stored, file
	}
	reader := &mirrorTileReader{ctx: ctx, sec: sec, store: store}
	proof, err := xtlog.ProveTree(newer.N, older.N, xtlog.TileHashReader(newer, reader))
	if errors.Is(err, errMissingTile) {
		return fmt.Errorf("the mirror of %s: the store's head of size %d and the file's of size %d cannot be proved one log with the tiles of the file and the store (%w): export again from a mirror that served lookups at its newest head", sec.db, stored.N, file.N, err)
	}
	if err == nil {
		err = xtlog.CheckTree(proof, newer.N, newer.Hash, older.N, older.Hash)
	}
	if err != nil {
		return fmt.Errorf("the mirror of %s: the store's head of size %d and the file's of size %d are not one log (%v): the database forked; the import is refused", sec.db, stored.N, file.N, err)
	}
	return nil
}

// checkMirrorKeys returns the verifiers of keys (database name -> verifier
// key), each of which must be named for its database.
func checkMirrorKeys(keys map[string]string) (map[string]note.Verifier, error) {
	vs := make(map[string]note.Verifier, len(keys))
	for db, vkey := range keys {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("import: the key given for the mirror of %s: %w", db, err)
		}
		if v.Name() != db {
			return nil, fmt.Errorf("import: the key given for the mirror of %s is named %s", db, v.Name())
		}
		vs[db] = v
	}
	return vs, nil
}

// importMirrors verifies the mirror sections and then stores them.
func importMirrors(ctx context.Context, sections []*mirrorSection, keys map[string]note.Verifier, s tlog.Store) ([]MirrorSummary, error) {
	if len(sections) == 0 {
		return nil, nil
	}
	ms, ok := s.(MirrorStore)
	if !ok {
		return nil, fmt.Errorf("import: %w", errNoMirrorStore)
	}
	verified := make([]*verifiedSection, len(sections))
	for i, sec := range sections {
		v := keys[sec.db]
		if v == nil {
			return nil, fmt.Errorf("import: %w", missingKey(sec.db))
		}
		vs, err := verifySection(ctx, sec, v, ms)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		verified[i] = vs
	}
	var list []MirrorSummary
	for _, vs := range verified {
		sum, err := storeSection(ctx, vs, keys[vs.sec.db], ms)
		if err != nil {
			return list, fmt.Errorf("import: %w", err)
		}
		list = append(list, sum)
	}
	return list, nil
}

// errNoMirrorStore is the error of a file with mirror sections imported
// into a store that keeps no mirror cache.
var errNoMirrorStore = errors.New("the file holds the cache of mirrored checksum databases, but the store keeps none")

// missingKey returns the error of a mirror section without a key.
func missingKey(db string) error {
	return fmt.Errorf("the file holds the cache of the mirrored checksum database %s, but no key for it was given: give its verifier key with --mirror \"<vkey>\" (ImportConfig.MirrorKeys), or import with a sumdb that does not mirror it", db)
}
