package tlog_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

// TestFailbackNeverExtendsRefusedTree checks this: replica A commits its
// record 10 on the primary (head E11) with its fast path; before the
// sequencer learns of the commit, the database fails over to a standby
// holding A's ten records and another one (head h', of size 11), which a
// refresh of A (a lookup's) serves. The publisher then refuses E11, which
// contradicts h', and A answers the append with ErrFork. The database
// fails back to the primary, which holds E11. A must not extend it: its
// tree contradicts h', which A served, and tlog.ErrFork says the log
// "refuses to serve or extend" such a store. follow takes the locked head
// for proven because it is the sequencer's edge, although the edge no
// longer holds the served head (edgeServes is false), and commits on it.
func TestFailbackNeverExtendsRefusedTree(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := newKeys(t)
			primary, standby := be.open(t), be.open(t)
			hPrime := fork(t, standby, k, 10, 1) // A's records 0 to 9, then another
			sw := &hookStore{Switch: storetest.NewSwitch(primary)}
			a, err := tlog.Open(ctx, sw, tlog.Config{Signer: k.signer, Verifier: k.verifier, RefreshInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			appendInOrder(t, a, 0, 10)

			sw.armAfter(func() {
				sw.Set(standby) // the failover loses E11
				if _, err := a.Refresh(ctx); err != nil {
					t.Errorf("A's Refresh on the standby = %v", err)
				}
			})
			p, v, text := gosum(10)
			if _, _, err := a.Append(ctx, p, v, text); !errors.Is(err, tlog.ErrFork) {
				t.Fatalf("append of record 10, committed on the primary while A served the standby's head = %v, want ErrFork", err)
			}
			if h := a.Head(); h.Size != hPrime.Size || h.Hash != hPrime.Hash {
				t.Fatalf("A serves %d %v, want the standby's head %d %v", h.Size, h.Hash, hPrime.Size, hPrime.Hash)
			}

			sw.Set(primary) // failback: the primary holds E11, which contradicts h'
			p, v, text = gosum(11)
			_, _, err = a.Append(ctx, p, v, text)
			if err == nil {
				t.Errorf("append after the failback acknowledged on a tree that contradicts the served head")
			}
			if h, rerr := primary.ReadHead(ctx); rerr != nil || h.Size != 11 {
				t.Errorf("primary's head after the failback = size %d, %v; want 11: A extended a tree that contradicts the head of size %d it served (append error: %v)", h.Size, rerr, hPrime.Size, err)
			}
		})
	}
}
