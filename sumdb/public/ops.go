package public

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/sumdb/client"
	"github.com/sumdb/sumdb/tlog"
)

// clientOps are the operations of the x/mod client of one lookup: reads
// from the Remote, the verifier key, the newest verified head in the
// StateStore, and the CrossCheck's cache of verified tiles and records.
// They remember what failed, which the client's errors tell as text only.
type clientOps struct {
	c   *CrossCheck
	ctx context.Context // of the lookup; ClientOps methods take none

	mu       sync.Mutex
	remote   []remoteError // guarded by mu; failed reads from the Remote, in order
	stateErr error         // guarded by mu; the first failure of the StateStore
	security string        // guarded by mu; the first evidence of a fork
}

var _ xsumdb.ClientOps = (*clientOps)(nil)

// A remoteError is a failed read from the Remote.
type remoteError struct {
	path string // "/lookup/..." or "/tile/..."
	err  error
}

// ReadRemote reads path ("/lookup/...", "/tile/...") from the public log.
func (o *clientOps) ReadRemote(path string) ([]byte, error) {
	data, err := o.c.remote.Get(o.ctx, strings.TrimPrefix(path, "/"))
	if err == nil && strings.HasPrefix(path, "/lookup/") {
		err = client.CheckLookupHead(data, note.VerifierList(o.c.remote.Verifier))
	}
	if err != nil {
		o.mu.Lock()
		o.remote = append(o.remote, remoteError{path, err})
		o.mu.Unlock()
		return nil, err
	}
	return data, nil
}

// ReadConfig returns the verifier key ("key") or the newest verified head
// of the public log ("<name>/latest"), empty if none.
func (o *clientOps) ReadConfig(file string) ([]byte, error) {
	switch file {
	case "key":
		return []byte(o.c.remote.Key), nil
	case o.c.name + "/latest":
		return o.readLatest()
	}
	return nil, fmt.Errorf("read config %s: no such file", file)
}

// readLatest returns the newest verified head from the StateStore, or nil
// if none. A head that is not signed by the key is refused as a local
// failure: the key was changed, or the store damaged; the client would
// otherwise report it as the log's.
func (o *clientOps) readLatest() ([]byte, error) {
	data, err := o.c.state.ReadState(o.ctx, o.c.latestName)
	if err == nil && data != nil {
		if _, herr := client.OpenTreeHead(data, note.VerifierList(o.c.remote.Verifier)); herr != nil {
			err = fmt.Errorf("the stored head of the public checksum database (state %s) does not verify with its key %s (%v): if the key changed, clear that state", o.c.latestName, o.c.remote.Key, herr)
		}
	}
	if err != nil {
		o.stateFailed(err)
		return nil, err
	}
	return data, nil
}

// WriteConfig replaces the newest verified head old with new in the
// StateStore, as a compare-and-swap: if another lookup, or another replica,
// moved it on, it returns xsumdb.ErrWriteConflict, and the client reads
// the stored head, proves it consistent with its own, and tries again.
func (o *clientOps) WriteConfig(file string, old, new []byte) error {
	if file != o.c.name+"/latest" {
		return fmt.Errorf("write config %s: no such file", file)
	}
	if len(old) == 0 {
		old = nil // the empty tree: unset
	}
	err := o.c.state.SwapState(o.ctx, o.c.latestName, old, new)
	if errors.Is(err, tlog.ErrConflict) {
		return xsumdb.ErrWriteConflict
	}
	if err != nil {
		o.stateFailed(err)
	}
	return err
}

// stateFailed remembers err, a failure of the StateStore.
func (o *clientOps) stateFailed(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stateErr == nil {
		o.stateErr = err
	}
}

// ReadCache returns a tile or record that a client verified before.
func (o *clientOps) ReadCache(file string) ([]byte, error) {
	if data, ok := o.c.cache.Load().Get(file); ok {
		return data, nil
	}
	return nil, fs.ErrNotExist
}

// WriteCache keeps a tile or record that the client verified.
func (o *clientOps) WriteCache(file string, data []byte) {
	o.c.cache.Load().Put(file, data)
}

// Log logs the client's message at debug level.
func (o *clientOps) Log(msg string) {
	o.c.logger.DebugContext(o.ctx, msg, "db", o.c.name)
}

// SecurityError records the client's proof that the public log forked: two
// inconsistent signed heads. The client then fails the lookup with
// xsumdb.ErrSecurity.
func (o *clientOps) SecurityError(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.security == "" {
		o.security = msg
	}
}

// A cause is why a lookup failed, as far as the operations saw.
type cause struct {
	security string // evidence of a fork, if any
	state    error  // a failure of the StateStore, if any
	remote   error  // the failed read from the Remote that the client's error reports, if any
	lookup   bool   // remote is of the lookup itself, not of a tile
}

// cause returns why the client's lookup failed with err. A failed tile read
// that the client recovered from (a partial tile it then read whole) is
// not the cause: only one whose text err carries.
func (o *clientOps) cause(err error) cause {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := cause{security: o.security, state: o.stateErr}
	msg := err.Error()
	for _, r := range o.remote {
		if strings.HasPrefix(r.path, "/lookup/") || strings.Contains(msg, r.err.Error()) {
			c.remote, c.lookup = r.err, strings.HasPrefix(r.path, "/lookup/")
			break
		}
	}
	return c
}
