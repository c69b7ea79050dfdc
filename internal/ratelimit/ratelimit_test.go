package ratelimit

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		client string
		at     time.Duration // after t0
		ok     bool
		wait   time.Duration // if !ok
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{
			name: "burst then rate", rate: 2, burst: 3,
			steps: []step{
				{"a", 0, true, 0},
				{"a", 0, true, 0},
				{"a", 0, true, 0},
				{"a", 0, false, 500 * time.Millisecond},
				{"a", 100 * time.Millisecond, false, 400 * time.Millisecond},
				{"a", 500 * time.Millisecond, true, 0},
				{"a", 500 * time.Millisecond, false, 500 * time.Millisecond},
				{"b", 500 * time.Millisecond, true, 0}, // its own bucket
				{"a", 2 * time.Second, true, 0},
				{"a", 2 * time.Second, true, 0},
				{"a", 2 * time.Second, true, 0},
				{"a", 2 * time.Second, false, 500 * time.Millisecond},
			},
		},
		{
			name: "slow rate", rate: 0.1, burst: 1,
			steps: []step{
				{"a", 0, true, 0},
				{"a", time.Second, false, 9 * time.Second},
				{"a", 10 * time.Second, true, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rl := New(tt.rate, tt.burst)
			for i, s := range tt.steps {
				ok, wait := rl.Allow(s.client, t0.Add(s.at))
				if ok != s.ok || !ok && (wait < s.wait-time.Millisecond || wait > s.wait+time.Millisecond) {
					t.Errorf("step %d: Allow(%q, t0+%v) = %v, %v; want %v, %v", i, s.client, s.at, ok, wait, s.ok, s.wait)
				}
			}
		})
	}
}

// TestRateLimiterMemory checks that the limiter forgets idle clients, and
// never remembers more than its maximum.
func TestRateLimiterMemory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rl := New(1, 10) // a bucket is full again after 10s
	rl.maxClients = 100
	for i := range 1000 {
		rl.Allow(fmt.Sprintf("c%d", i), t0)
		if n := rl.Len(); n > 100 {
			t.Fatalf("after %d clients, %d buckets, want at most 100", i+1, n)
		}
	}
	// A new client sweeps the idle ones away.
	rl.Allow("late", t0.Add(time.Minute))
	if n := rl.Len(); n != 1 {
		t.Errorf("after the sweep, %d buckets, want 1", n)
	}
	// A client that is still refilling is not forgotten: forgetting it
	// would hand it a full bucket.
	for range 10 {
		rl.Allow("busy", t0.Add(2*time.Minute-5*time.Second))
	}
	rl.Allow("other", t0.Add(2*time.Minute)) // "late" is swept away by now
	if n := rl.Len(); n != 2 {
		t.Errorf("after the second sweep, %d buckets, want 2 (busy and other)", n)
	}
	for i := range 6 {
		ok, _ := rl.Allow("busy", t0.Add(2*time.Minute))
		if want := i < 5; ok != want {
			t.Errorf("busy client's token %d after 5s of refill: %v, want %v", i, ok, want)
		}
	}
}

// TestRateLimiterFull checks that a full limiter of clients none of which
// is idle still limits the clients it keeps, and forgets the least
// recently used one to admit a new client.
func TestRateLimiterFull(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rl := New(1, 2) // no refill: the clock stays at t0
	rl.maxClients = 3
	allow := func(client string, want bool) {
		t.Helper()
		if ok, _ := rl.Allow(client, t0); ok != want {
			t.Errorf("Allow(%q) = %v, want %v", client, ok, want)
		}
		if n, m := rl.Len(), rl.order.Len(); n > 3 || n != m {
			t.Fatalf("%d buckets in the map and %d in the order, want the same, at most 3", n, m)
		}
	}
	for _, c := range []string{"a", "b", "c"} { // empty their buckets
		allow(c, true)
		allow(c, true)
		allow(c, false)
	}
	allow("a", false) // least recently used first: b, c, a
	allow("d", true)  // forgets b: c, a, d
	allow("a", false) // kept, and still limited: c, d, a
	allow("c", false) // d, a, c
	allow("b", true)  // forgotten, so a full bucket again; forgets d: a, c, b
	allow("b", true)
	allow("b", false)
	allow("a", false)
	allow("c", false)
	allow("d", true) // forgotten too
}

// TestRateLimiterSlow checks that a bucket too slow to fill up in a
// time.Duration is never forgotten as idle.
func TestRateLimiterSlow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rl := New(1e-12, 1)
	if ok, _ := rl.Allow("a", t0); !ok {
		t.Fatal("first token refused")
	}
	rl.Allow("b", t0.Add(time.Hour))
	if ok, _ := rl.Allow("a", t0.Add(time.Hour)); ok {
		t.Error("a's bucket forgotten, or refilled, after an hour")
	}
}

// BenchmarkRateLimiterFull measures admitting a new client to a limiter
// full of clients none of which is idle, as a client with many addresses
// would keep it. The cost must not grow with the number of clients.
func BenchmarkRateLimiterFull(b *testing.B) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, size := range []int{1 << 10, maxRateClients} {
		b.Run(fmt.Sprintf("clients=%d", size), func(b *testing.B) {
			rl := New(1, 10)
			rl.maxClients = size
			for i := range size {
				rl.Allow("fill"+strconv.Itoa(i), t0)
			}
			i := 0
			for b.Loop() {
				rl.Allow("new"+strconv.Itoa(i), t0)
				i++
			}
			if n := rl.Len(); n != size {
				b.Fatalf("%d buckets, want %d", n, size)
			}
		})
	}
}

// TestRateLimiterWait checks that Wait tells how long a client waits for a
// token without taking one.
func TestRateLimiterWait(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rl := New(2, 2)
	if d := rl.Wait("a", t0); d != 0 || rl.Len() != 0 {
		t.Errorf("Wait(new client) = %v with %d buckets, want 0 with none", d, rl.Len())
	}
	rl.Allow("a", t0)
	for range 3 {
		if d := rl.Wait("a", t0); d != 0 {
			t.Errorf("Wait(a, one token left) = %v, want 0", d)
		}
	}
	rl.Allow("a", t0)
	if d := rl.Wait("a", t0); d != 500*time.Millisecond {
		t.Errorf("Wait(a, empty) = %v, want 500ms", d)
	}
	if d := rl.Wait("a", t0.Add(200*time.Millisecond)); d != 300*time.Millisecond {
		t.Errorf("Wait(a, 200ms later) = %v, want 300ms", d)
	}
	if ok, _ := rl.Allow("a", t0.Add(500*time.Millisecond)); !ok {
		t.Error("Allow(a) after the wait: refused")
	}
}
