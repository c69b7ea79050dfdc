package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/durable"
	"github.com/sumdb/sumdb/sumdb/client"
)

// tileHeight is the height of the log's tiles: 8, which the go command
// never changes.
const tileHeight = 8

// maxStateFile bounds what is read of a state file: a signed head and at
// most one partial tile per level of the tree, a few tens of KiB.
const maxStateFile = 1 << 20

// A stateFile is the content of the state file: the newest tree head
// verified, a signed note, and the hash tiles on the right edge of its
// tree, which prove the head without asking the log. A file that holds just
// a signed note, such as the go command's own <GOPATH>/pkg/sumdb/<name>/latest,
// is read as a state without tiles.
type stateFile struct {
	Head  string            `json:"head"`
	Tiles map[string][]byte `json:"tiles,omitempty"` // by tile path, "tile/8/0/000.p/3"
}

// clientOps are the operations x/mod's sumdb.Client needs: reads from the
// Remote, the verifier key, the newest verified head kept in the state
// file, and a cache in memory for the length of one Run.
type clientOps struct {
	ctx    context.Context // of the Run; ClientOps methods take none
	remote *client.Remote
	name   string // the log's name: the client's config files are <name>/latest
	state  string // the state file; "" keeps the head in memory
	logger *slog.Logger

	mu         sync.Mutex
	latest     []byte            // guarded by mu; the newest head verified, as a signed note
	stateErr   error             // guarded by mu; the state file's first failure after newOps, from when on the head is kept in memory
	cache      map[string][]byte // guarded by mu; verified records and tiles, by the client's file name
	lookupErrs map[string]error  // guarded by mu; failed lookup requests, by remote path
	otherErrs  []error           // guarded by mu; other failed requests (tiles)
	security   []string          // guarded by mu; SECURITY ERROR messages, without duplicates

	stateTiles   int   // set by newOps: the tiles the state file held
	droppedTiles int   // set by newOps: of stateTiles, those left unused because they do not prove the state's head
	rewritten    bool  // guarded by mu; the state file was written in this Run
	witnessedN   int64 // guarded by mu; the size of the head the witnesses cosigned (see witness), -1 without a witness policy
}

var _ xsumdb.ClientOps = (*clientOps)(nil)

// newOps returns the client operations of a Run and the head of the state
// file, after checking that the head is signed by the log's key.
func newOps(ctx context.Context, remote *client.Remote, state string, logger *slog.Logger) (*clientOps, *Head, error) {
	o := &clientOps{
		ctx:        ctx,
		remote:     remote,
		name:       remote.Verifier.Name(),
		state:      state,
		logger:     logger,
		cache:      make(map[string][]byte),
		lookupErrs: make(map[string]error),
		witnessedN: -1,
	}
	st, err := o.readStateFile()
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return nil, nil, fmt.Errorf("%w: make it a readable file, or name another state file", err)
	}
	if err != nil {
		return nil, nil, err
	}
	if st.Head == "" {
		return o, nil, nil
	}
	corrupt := func(err error) error {
		return fmt.Errorf("state file %s is corrupt (%v): remove it to start afresh, which forgets the head that later heads are proved consistent with", state, err)
	}
	head, err := o.parseHead([]byte(st.Head))
	if err != nil {
		// The client would fail every lookup with this; say it once, with
		// what to do.
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return nil, nil, fmt.Errorf("state file %s holds no tree head signed by %s (%v): it belongs to another checksum database; give each database its own state file", state, remote.Key, err)
		}
		return nil, nil, corrupt(err)
	}
	o.latest = []byte(st.Head)
	// The tiles that prove the head let the client check it against itself
	// without asking the log, whose tiles, if it forked, would not prove it.
	// The first newer head the log serves is then checked against this one,
	// and a fork is reported as the go command reports it, with both heads.
	// (The go command keeps such tiles in its module cache.)
	tiles := make(map[xtlog.Tile][]byte, len(st.Tiles))
	for p, data := range st.Tiles {
		t, err := xtlog.ParseTilePath(p)
		if err != nil || t.H != tileHeight || t.L < 0 || len(data) != t.W*xtlog.HashSize {
			return nil, nil, corrupt(fmt.Errorf("bad tile %q", p))
		}
		tiles[t] = data
	}
	// The tiles are not signed: one damaged on disk would fail the client's
	// proofs with the error of a tile the log served ("downloaded
	// inconsistent tile"), which failure() would hold against the log.
	// Only tiles that prove the state's own signed head are used; without
	// the others the client asks the log for them, and verifies the log's
	// against this head as it would these.
	tree, err := client.OpenTreeHead([]byte(st.Head), note.VerifierList(remote.Verifier))
	if err != nil {
		return nil, nil, corrupt(err) // parseHead opened it: cannot happen
	}
	proved, err := provingTiles(tree, tiles)
	if err != nil {
		logger.DebugContext(ctx, "state file tiles do not prove its head", "state", state, "err", err)
	}
	for t, data := range proved {
		o.cache[o.name+"/"+t.Path()] = data
	}
	o.stateTiles, o.droppedTiles = len(tiles), len(tiles)-len(proved)
	return o, head, nil
}

// provingTiles returns those of tiles that prove the tree hash of tree: its
// right edge, one tile per level at most, as proofTiles keeps them. They
// are verified together, so that one that does not hash as it should
// leaves all of them unproved: which one is wrong cannot be told.
func provingTiles(tree xtlog.Tree, tiles map[xtlog.Tile][]byte) (map[xtlog.Tile][]byte, error) {
	r := &stateTileReader{tiles: tiles}
	h, err := xtlog.TreeHash(tree.N, xtlog.TileHashReader(tree, r))
	if err != nil {
		return nil, err
	}
	if h != tree.Hash {
		return nil, fmt.Errorf("tiles give tree hash %v, head has %v", h, tree.Hash)
	}
	return r.proved, nil
}

// A stateTileReader is a tlog.TileReader of the tiles of a state file, and
// records those that the tlog.HashReader over it verified.
type stateTileReader struct {
	tiles  map[xtlog.Tile][]byte
	proved map[xtlog.Tile][]byte
}

func (r *stateTileReader) Height() int { return tileHeight }

func (r *stateTileReader) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, ok := r.tiles[t]
		if !ok {
			return nil, fmt.Errorf("no tile %s", t.Path())
		}
		out[i] = data
	}
	return out, nil
}

func (r *stateTileReader) SaveTiles(tiles []xtlog.Tile, data [][]byte) {
	if r.proved == nil {
		r.proved = make(map[xtlog.Tile][]byte, len(tiles))
	}
	for i, t := range tiles {
		r.proved[t] = data[i]
	}
}

// parseHead verifies a signed tree note of the log and returns its head.
func (o *clientOps) parseHead(msg []byte) (*Head, error) {
	tree, err := client.OpenTreeHead(msg, note.VerifierList(o.remote.Verifier))
	if err != nil {
		return nil, err
	}
	return &Head{Size: tree.N, Hash: tree.Hash.String()}, nil
}

// rewriteState writes the state file again, with the tiles that prove its
// head, after newOps left some of its tiles unused: otherwise every later
// Run would find them again. Nothing is done if a newer head was written
// in this Run, which replaced them, or after a SECURITY ERROR, which
// leaves the state file as it was for whoever looks into it. A failure is
// kept in stateErr, as WriteConfig keeps it; another process that moved
// the head on is no failure, as it wrote its own tiles.
func (o *clientOps) rewriteState() {
	o.mu.Lock()
	latest := o.latest
	skip := o.droppedTiles == 0 || o.rewritten || o.state == "" || o.stateErr != nil || len(latest) == 0 || len(o.security) > 0
	o.mu.Unlock()
	if skip {
		return
	}
	if err := o.WriteConfig(o.name+"/latest", latest, latest); err != nil {
		o.logger.DebugContext(o.ctx, "state file not written again", "err", err)
	}
}

// stateWarning returns what the Report says of state tiles that newOps
// left unused, or "" if it used all.
func (o *clientOps) stateWarning() string {
	if o.droppedTiles == 0 {
		return ""
	}
	o.mu.Lock()
	rewritten := o.rewritten
	o.mu.Unlock()
	msg := fmt.Sprintf("%d of the %d tiles kept in state file %s do not prove its signed tree head (a damaged disk, or an edit of the file): they were not used, and the log's own tiles are verified against that head instead", o.droppedTiles, o.stateTiles, o.state)
	if rewritten {
		msg += "; the state file was written again without them"
	}
	return msg + "; if this comes back, check the disk that holds the state file"
}

// head returns the newest head verified, or nil if none.
func (o *clientOps) head() *Head {
	o.mu.Lock()
	latest := o.latest
	o.mu.Unlock()
	if len(latest) == 0 {
		return nil
	}
	h, err := o.parseHead(latest)
	if err != nil {
		return nil // the client verified it before handing it over
	}
	return h
}

// ReadRemote reads path ("/lookup/...", "/tile/...") from the log. A failed
// read is remembered: the client's errors do not wrap ours, so Run finds out
// from these why a lookup failed.
func (o *clientOps) ReadRemote(path string) ([]byte, error) {
	data, err := o.remote.Get(o.ctx, strings.TrimPrefix(path, "/"))
	if err == nil && strings.HasPrefix(path, "/lookup/") {
		err = o.vetLookup(data)
		if err == nil {
			err = o.vetWitnessed(data)
		}
	}
	if err != nil {
		o.mu.Lock()
		if strings.HasPrefix(path, "/lookup/") {
			o.lookupErrs[path] = err
		} else {
			o.otherErrs = append(o.otherErrs, err)
		}
		o.mu.Unlock()
		o.logger.DebugContext(o.ctx, "read from checksum database", "path", path, "err", err)
		return nil, err
	}
	return data, nil
}

// vetLookup refuses a lookup answer whose signed tree head is of more than
// client.MaxTreeSize records, before the client sees it: the client would
// prove the head with tree arithmetic that never ends on such sizes. All
// else about the answer is the client's to verify, and it reads the tree
// head of lookup answers only (tiles carry none, and the state's heads
// were opened with parseHead).
func (o *clientOps) vetLookup(data []byte) error {
	_, _, msg, err := xtlog.ParseRecord(data)
	if err != nil {
		return nil // the client refuses it
	}
	if _, err := client.OpenTreeHead(msg, note.VerifierList(o.remote.Verifier)); errors.Is(err, client.ErrTreeTooLarge) {
		return err
	}
	return nil
}

// ReadConfig returns the verifier key ("key") or the newest verified head
// ("<name>/latest"); an empty head starts from the empty tree.
func (o *clientOps) ReadConfig(file string) ([]byte, error) {
	switch file {
	case "key":
		return []byte(o.remote.Key), nil
	case o.name + "/latest":
		return o.readHead()
	}
	return nil, fmt.Errorf("read config %s: no such file", file)
}

// readHead returns the head of the state file, or nil if there is none.
// When no state file is kept, it returns the head held in memory.
func (o *clientOps) readHead() ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.readHeadLocked()
}

// readHeadLocked is readHead for a caller holding o.mu. A state file that
// cannot be read now, though newOps read it, or that another process
// filled with what is not a head of the log, is a local failure, which the
// client must not see: its errors reach failure() as text only, where a
// failure it cannot place reads as evidence against the log. It is kept in
// stateErr for the Report, and the head in memory from then on.
func (o *clientOps) readHeadLocked() ([]byte, error) {
	if o.state == "" || o.stateErr != nil {
		return o.latest, nil
	}
	st, err := o.readStateFile()
	if err == nil && st.Head != "" {
		if _, herr := o.parseHead([]byte(st.Head)); herr != nil {
			err = fmt.Errorf("read state file: it no longer holds a tree head of this log: %w", herr)
		}
	}
	if err != nil {
		o.stateErr = err
		return o.latest, nil
	}
	return []byte(st.Head), nil
}

// readStateFile reads the state file; a missing file is an empty state.
func (o *clientOps) readStateFile() (*stateFile, error) {
	st := new(stateFile)
	if o.state == "" {
		return st, nil
	}
	f, err := os.Open(o.state)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	switch {
	case len(data) > maxStateFile:
		return nil, fmt.Errorf("state file %s is larger than %d bytes: it is not a state file; name another one", o.state, maxStateFile)
	case len(bytes.TrimSpace(data)) == 0:
		return st, nil
	case data[0] != '{':
		st.Head = string(data) // a signed note alone
		return st, nil
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt (%v): remove it to start afresh, which forgets the head that later heads are proved consistent with", o.state, err)
	}
	return st, nil
}

// WriteConfig replaces the newest verified head old with new, as a
// compare-and-swap (the ClientOps contract): if the state no longer holds
// old, because another client of the same state moved it on, it returns
// xsumdb.ErrWriteConflict, and the client merges and tries again. The file
// is replaced atomically (a temporary file renamed over it), so that a
// crash leaves the old head or the new one. Within a process the swap is
// atomic; two processes sharing one state file may both succeed, the last
// one winning, which loses no more than the head the other one saw.
//
// A state file that cannot be written is a local failure, never told to
// the client (see readHeadLocked): it is kept in stateErr, and the head in
// memory from then on, so that the run goes on checking.
func (o *clientOps) WriteConfig(file string, old, new []byte) error {
	if file != o.name+"/latest" {
		return fmt.Errorf("write config %s: no such file", file)
	}
	o.mu.Lock()
	keep := o.state != "" && o.stateErr == nil
	o.mu.Unlock()
	var tiles map[string][]byte
	if keep {
		// Outside the lock: this may read tiles from the log.
		var err error
		if tiles, err = o.proofTiles(new); err != nil {
			// The head is verified, and worth keeping without its proof: the
			// next run then asks the log for the tiles.
			o.logger.DebugContext(o.ctx, "no tiles to keep with the head", "err", err)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	cur, err := o.readHeadLocked()
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, old) {
		return xsumdb.ErrWriteConflict
	}
	if o.state != "" && o.stateErr == nil {
		data, err := json.MarshalIndent(stateFile{Head: string(new), Tiles: tiles}, "", "\t")
		if err == nil {
			err = writeFileAtomic(o.state, append(data, '\n'))
		}
		if err != nil {
			o.stateErr = fmt.Errorf("write state file: %w", err)
		} else {
			o.rewritten = true
		}
	}
	o.latest = bytes.Clone(new)
	return nil
}

// stateFailure returns what the Report says of a state file that failed
// after newOps, or "" if it did not.
func (o *clientOps) stateFailure() string {
	o.mu.Lock()
	err := o.stateErr
	o.mu.Unlock()
	if err == nil {
		return ""
	}
	return fmt.Sprintf("state file %s could not be kept up to date (%v): the lines were checked, but the newest verified tree head was not kept, so the next run cannot prove the log's heads consistent with this run's; make the file and its directory writable, or name another state file", o.state, err)
}

// proofTiles returns, by path, the hash tiles from which the tree hash of
// the signed head msg is computed: the right edge of its tree, one tile per
// level at most. They come from the cache (the client has just verified
// them) or else from the log, and are verified against the head.
func (o *clientOps) proofTiles(msg []byte) (map[string][]byte, error) {
	tree, err := client.OpenTreeHead(msg, note.VerifierList(o.remote.Verifier))
	if err != nil {
		return nil, err
	}
	r := &tileRecorder{o: o, tiles: make(map[string][]byte)}
	h, err := xtlog.TreeHash(tree.N, xtlog.TileHashReader(tree, r))
	if err != nil {
		return nil, err
	}
	if h != tree.Hash {
		return nil, fmt.Errorf("tiles give tree hash %v, head has %v", h, tree.Hash) // TileHashReader checked them
	}
	return r.tiles, nil
}

// A tileRecorder is a tlog.TileReader that reads from the client's cache or
// the log, and records what it read.
type tileRecorder struct {
	o     *clientOps
	mu    sync.Mutex
	tiles map[string][]byte // guarded by mu
}

func (r *tileRecorder) Height() int { return tileHeight }

func (r *tileRecorder) ReadTiles(tiles []xtlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := r.read(t)
		if err != nil {
			return nil, err
		}
		out[i] = data
		r.mu.Lock()
		r.tiles[t.Path()] = data
		r.mu.Unlock()
	}
	return out, nil
}

// read reads tile t as the client does: from the cache, or the prefix of
// the full tile in the cache, or from the log.
func (r *tileRecorder) read(t xtlog.Tile) ([]byte, error) {
	full := t
	full.W = 1 << tileHeight
	r.o.mu.Lock()
	data, ok := r.o.cache[r.o.name+"/"+t.Path()]
	if !ok {
		if f, fok := r.o.cache[r.o.name+"/"+full.Path()]; fok && len(f) == full.W*xtlog.HashSize {
			data, ok = f[:t.W*xtlog.HashSize], true
		}
	}
	r.o.mu.Unlock()
	if ok {
		return data, nil
	}
	return r.o.remote.Get(r.o.ctx, t.Path())
}

func (r *tileRecorder) SaveTiles(tiles []xtlog.Tile, data [][]byte) {
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	for i, t := range tiles {
		r.o.cache[r.o.name+"/"+t.Path()] = data[i]
	}
}

// writeFileAtomic replaces file with data: a temporary file in the same
// directory, synced, then renamed over file.
// Its errors are the os package's, which name the file.
func writeFileAtomic(file string, data []byte) (err error) {
	dir := filepath.Dir(file)
	if err := durable.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(file)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// A signed tree head is public: let a CI cache or another user read it.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return err
	}
	// Without it, a power loss could take the new file's name away, and
	// with it the newest head this state has verified.
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

// ReadCache returns a record or tile verified earlier in this Run, or a
// tile of the state file.
func (o *clientOps) ReadCache(file string) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if data, ok := o.cache[file]; ok {
		return data, nil
	}
	return nil, fs.ErrNotExist
}

// WriteCache keeps a verified record or tile for the rest of the Run.
func (o *clientOps) WriteCache(file string, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cache[file] = data
}

// Log logs the client's message at debug level.
func (o *clientOps) Log(msg string) {
	o.logger.DebugContext(o.ctx, msg)
}

// SecurityError records the client's proof that the log forked. The client
// then fails the lookup with xsumdb.ErrSecurity, and Run reports it.
func (o *clientOps) SecurityError(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.security {
		if m == msg {
			return
		}
	}
	o.security = append(o.security, msg)
}

// failure returns why the client's lookup of mod ("path@version") failed
// with err, which carries the text, not the identity, of the errors it ran
// into; path is the lookup's remote path.
func (o *clientOps) failure(err error, mod, path string) (Kind, string) {
	msg := strings.TrimPrefix(err.Error(), mod+": ")
	if strings.Contains(msg, xsumdb.ErrSecurity.Error()) {
		return Fork, "the log's tree heads are inconsistent: it forked, or rewrote its history (see the SECURITY ERROR)"
	}
	o.mu.Lock()
	lerr := o.lookupErrs[path]
	var rerr error
	for _, e := range o.otherErrs {
		if strings.Contains(msg, e.Error()) {
			rerr = e
			break
		}
	}
	o.mu.Unlock()
	switch {
	case errors.Is(lerr, client.ErrTreeTooLarge):
		return BadProof, lerr.Error() + ": do not trust its answers, and tell its operator"
	case errors.Is(lerr, errNotYetWitnessed):
		return Unchecked, lerr.Error()
	case errors.Is(lerr, client.ErrUnauthorized):
		// Trying again later changes nothing: the credentials must.
		return Unchecked, lerr.Error()
	case lerr != nil && errors.Is(lerr, client.ErrNotFound):
		return Unknown, strings.TrimPrefix(lerr.Error(), client.ErrNotFound.Error()+": ")
	case lerr != nil:
		return Unchecked, lerr.Error() + " (try again later)"
	case rerr != nil:
		return Unchecked, rerr.Error() + " (try again later)"
	case o.ctx.Err() != nil:
		return Unchecked, o.ctx.Err().Error()
	}
	// Everything was read, and something read fails verification: a
	// record or tile that does not hash to the signed tree head, or a
	// head not signed by the log's key. No local failure gets here: every
	// failed read from the log is in lookupErrs or otherErrs, the state
	// file's failures are kept from the client (stateErr), and of its
	// tiles the client sees only those that prove its signed head (newOps);
	// the cache in memory holds only what the client or proofTiles verified.
	return BadProof, fmt.Sprintf("the log's answer does not verify against its signed tree head: %s (the log, or something between it and you, serves altered data)", msg)
}
