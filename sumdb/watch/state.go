package watch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/durable"
	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog"
)

// stateFile is the name of the state file in the state directory.
const stateFile = "watch.json"

// Bounds of the state file.
const (
	maxStateFile = 16 << 20 // a head, a few tiles, the alerts kept
	maxReported  = 10000    // alerts kept in the state, the newest
)

// A state is what a watch keeps between runs, in the state file.
type state struct {
	// Key is the verifier key of the log: a state directory watches one.
	Key string `json:"key"`
	// Head is the newest signed tree head verified, a note; "" for none.
	Head string `json:"head,omitempty"`
	// Tiles are the hash tiles of the right edge of Head's tree, which
	// prove its root, by path: the tree of Head without asking the log.
	Tiles map[string][]byte `json:"tiles,omitempty"`
	// Scanned is the number of records scanned, from record 0: the id of
	// the next record to scan.
	Scanned int64 `json:"scanned"`
	// Modules are the patterns that the records before Scanned were
	// scanned for.
	Modules []string `json:"modules"`
	// Reported are the alerts delivered, newest last.
	Reported []reported `json:"reported,omitempty"`
}

// A reported is an alert delivered.
type reported struct {
	Record  int64  `json:"record"`
	Kind    Kind   `json:"kind"`
	Module  string `json:"module,omitempty"`
	Version string `json:"version,omitempty"`
}

// readState reads the state file of dir; a missing file is an empty state.
func readState(dir string) (*state, error) {
	f, err := os.Open(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read the state: %w", err)
	}
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("state file %s is larger than %d bytes: it is damaged; remove it to start afresh", f.Name(), maxStateFile)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("state file %s is damaged (%v): remove it to start afresh", f.Name(), err)
	}
	return &st, nil
}

// write writes the state to the state file of dir, crash-safe.
func (st *state) write(dir string) error {
	if n := len(st.Reported); n > maxReported {
		st.Reported = st.Reported[n-maxReported:]
	}
	data, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("write the state: %w", err)
	}
	if err := durable.WriteFile(filepath.Join(dir, stateFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("%w: the state directory must be writable", err)
	}
	return nil
}

// head returns the verified head of the state, and its tiles that prove
// it. Tiles that do not prove it (a damaged disk) are dropped: the log's
// are then read and verified instead.
func (st *state) head(remote *client.Remote) (*signedHead, error) {
	if st.Head == "" {
		return nil, nil
	}
	tree, err := client.OpenTreeHead([]byte(st.Head), note.VerifierList(remote.Verifier))
	if err != nil {
		return nil, fmt.Errorf("the state's signed head does not verify with the log's key (%v): the state file is damaged; remove it to start afresh, which forgets the head that later heads are proved consistent with", err)
	}
	h := &signedHead{Tree: tree, Note: []byte(st.Head), Tiles: make(map[string][]byte)}
	kept := &keptTiles{kept: st.Tiles}
	if root, err := xtlog.TreeHash(tree.N, xtlog.TileHashReader(tree, kept)); err == nil && root == tree.Hash {
		h.Tiles = kept.read
	}
	return h, nil
}

// A signedHead is a verified signed tree head and the tiles, by path,
// that prove its root.
type signedHead struct {
	xtlog.Tree
	Note  []byte
	Tiles map[string][]byte
}

// A keptTiles is a TileReader of tiles kept, by path, else read from next
// (nil for none), and records the tiles read.
type keptTiles struct {
	kept map[string][]byte
	next xtlog.TileReader

	mu   sync.Mutex
	read map[string][]byte // guarded by mu
}

func (r *keptTiles) Height() int { return tlog.TileHeight }

func (r *keptTiles) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, ok := r.kept[t.Path()]
		if !ok || len(b) != t.W*xtlog.HashSize {
			if r.next == nil {
				return nil, fmt.Errorf("no tile %s", t.Path())
			}
			bs, err := r.next.ReadTiles([]xtlog.Tile{t})
			if err != nil {
				return nil, err
			}
			b = bs[0]
		}
		data[i] = b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.read == nil {
		r.read = make(map[string][]byte)
	}
	for i, t := range tiles {
		r.read[t.Path()] = data[i]
	}
	return data, nil
}

func (r *keptTiles) SaveTiles([]xtlog.Tile, [][]byte) {}
