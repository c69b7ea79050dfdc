package tlog_test

import (
	"context"
	"testing"

	"github.com/sumdb/sumdb/tlog"
)

// TestReviewFailoverBelowAdoptedHead: replica A serves, through a refresh,
// the head of size 16 that replica B appended on top of A's 10 records. The
// database fails over to a standby that lost B's commits: it holds exactly
// A's tree of size 10, which is still A's sequencer edge. A must not extend
// it: every head it would sign contradicts the head of size 16 it served.
func TestReviewFailoverBelowAdoptedHead(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := newKeys(t)
			primary := be.open(t).(tlog.LockingStore)
			sw := &switchStore{cur: primary}
			cfg := tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1}
			a, err := tlog.Open(ctx, sw, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			appendInOrder(t, a, 0, 10)

			standby := be.open(t).(tlog.LockingStore)
			if h := fork(t, standby, k, 10, 0); h.Hash != a.Head().Hash {
				t.Fatalf("standby head %d %v, want A's %d %v", h.Size, h.Hash, a.Head().Size, a.Head().Hash)
			}

			b, err := tlog.Open(ctx, primary, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			appendInOrder(t, b, 100, 106)
			if h, err := a.Refresh(ctx); err != nil || h.Size != 16 {
				t.Fatalf("A's Refresh = head %d, %v; want B's head 16", h.Size, err)
			}
			served := a.Head()

			sw.set(standby) // the failover loses B's commits
			for i := range 8 {
				p, v, text := gosum(2000 + i)
				if rec, h, err := a.Append(ctx, p, v, text); err == nil {
					t.Errorf("A acknowledged record %d under head %d after a failover to a database that lacks the head of size %d it served", rec.ID, h.Size, served.Size)
				}
			}
			if h := a.Head(); h.Size != served.Size || h.Hash != served.Hash {
				t.Errorf("A serves head %d %v, which contradicts the head %d %v it served before", h.Size, h.Hash, served.Size, served.Hash)
			}
			if h, err := standby.ReadHead(ctx); err != nil || h.Size != 10 {
				t.Errorf("standby head after A's appends = %d, %v; want 10: A extended a tree that lacks the head of size %d it served", h.Size, err, served.Size)
			}
		})
	}
}
