package sumdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

// TestCachesAfterFork checks this: the database fails over to a standby that
// holds another tree of the served size (records 8 and 9 differ). Before
// the server's next refresh, a lookup and a tile request read the standby
// (the window no server can close without reading the head per request)
// and fill the caches. Once the refresh has found the fork, the server
// must answer neither from the standby's data; and once the database is
// back, it must not keep serving a record its tree does not hold.
func TestCachesAfterFork(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var sw *storetest.Switch
			primary := b.open(t)
			e := newEnv(t, b, envOptions{
				logCfg: tlog.Config{RefreshInterval: -1},
				wrap: func(tlog.Store) tlog.Store {
					sw = storetest.NewSwitch(primary)
					return sw
				},
			})
			_, standby := forkedStandby(t, e, b)

			const lookup, tile = "/lookup/example.com/b/m0@v1.0.0", "/tile/8/0/000.p/10"
			goodTile, err := primary.ReadTile(ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			sw.Set(standby)
			// The window before the refresh: the answers come from the standby.
			e.get(lookup)
			_, _, forkedTile := e.get(tile)
			if bytes.Equal(forkedTile, goodTile) {
				t.Fatalf("the standby's tile equals the primary's")
			}

			if _, err := e.log.Refresh(ctx); !errors.Is(err, tlog.ErrFork) {
				t.Fatalf("Refresh on the standby = %v, want ErrFork", err)
			}
			if code, _, body := e.get(lookup); code == 200 {
				t.Errorf("GET %s after the fork was found = 200 %q: a record of the standby's tree, under the served head that does not hold it", lookup, body)
			}
			if code, _, body := e.get(tile); code == 200 && !bytes.Equal(body, goodTile) {
				t.Errorf("GET %s after the fork was found = 200 with the standby's hashes, which the served head does not authenticate", tile)
			}

			sw.Set(primary)
			if _, err := e.log.Refresh(ctx); err != nil {
				t.Fatalf("Refresh back on the primary = %v", err)
			}
			if code, _, body := e.get(lookup); code == 200 {
				t.Errorf("GET %s back on the primary = 200 %q: the served tree does not hold that record", lookup, body)
			}
			if code, _, body := e.get(tile); code != 200 || !bytes.Equal(body, goodTile) {
				t.Errorf("GET %s back on the primary = %d, the standby's hashes: want the primary's tile", tile, code)
			}
		})
	}
}

// forkedStandby logs example.com/a/m0 to m9 in e's log, and returns the
// head it serves then, and a standby store of backend b that holds another
// tree of that size: a/m0 to m7, then b/m0 and b/m1, signed by the same key.
func forkedStandby(t *testing.T, e *env, b backend) (tlog.Head, tlog.Store) {
	t.Helper()
	ctx := context.Background()
	appendOne := func(l *tlog.Log, prefix string, i int) {
		path := fmt.Sprintf("example.com/%s/m%d", prefix, i)
		if _, _, err := l.Append(ctx, path, "v1.0.0", synthText(path, "v1.0.0")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		appendOne(e.log, "a", i)
	}
	served := e.log.Head()
	standby := b.open(t)
	signer, err := note.NewSigner(e.skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(e.vkey)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlog.Open(ctx, standby, tlog.Config{Signer: signer, Verifier: verifier, RefreshInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 8 {
		appendOne(other, "a", i)
	}
	appendOne(other, "b", 0)
	appendOne(other, "b", 1)
	if h := other.Head(); h.Size != served.Size || h.Hash == served.Hash {
		t.Fatalf("standby head %d %v, want size %d and another root", h.Size, h.Hash, served.Size)
	}
	return served, standby
}
