package tlog_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/store"
	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

// openBenchLog opens a Log on a new store of backend b, with a
// published-head file, as serve runs it.
func openBenchLog(b *testing.B, backend int) *tlog.Log {
	b.Helper()
	k := newKeys(b)
	s := benchStore(b, backend)
	var commits, records, nanos atomic.Int64
	l, err := tlog.Open(context.Background(), s, tlog.Config{
		Signer: k.signer, Verifier: k.verifier,
		MaxQueue:      1 << 20,
		PublishedFile: filepath.Join(b.TempDir(), "published-head"),
		OnCommit: func(n int, d time.Duration) {
			commits.Add(1)
			records.Add(int64(n))
			nanos.Add(int64(d))
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		l.Close()
		if n := commits.Load(); n > 0 {
			b.ReportMetric(float64(records.Load())/float64(n), "records/batch")
			b.ReportMetric(float64(nanos.Load())/float64(n)/1e6, "commit-ms")
		}
	})
	return l
}

// percentile returns the p-th percentile of sorted durations, in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(float64(len(sorted))*p/100))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// BenchmarkSequencer measures Log.Append of new records, the upstream
// excluded, on both stores, with a published-head file as serve has, and
// the same of x/mod's in-memory sumdb.TestServer (Lookup of new records)
// for reference. "flat": 4,096 goroutines append as fast as they can
// (closed loop), for the throughput; the latency of each Append too.
// "rate10k": 10,000 appends per second on a fixed schedule (open loop),
// each in a goroutine of its own, for 2 seconds per iteration; the latency
// is from the Append call to its return (a signed head covering the record
// committed and recorded in the published-head file). The stores also
// report their records per batch and the mean time of a batch commit.
//
//	go test -run '^$' -bench Sequencer -benchtime 5x ./tlog/
func BenchmarkSequencer(b *testing.B) {
	type appender func(i int) error
	appenders := []struct {
		name string
		open func(b *testing.B) appender
	}{
		// The reference point: x/mod's in-memory sumdb.TestServer, which
		// logs a new record under a mutex at each Lookup, stores nothing
		// durably and signs a head only when asked for one.
		{"testserver", func(b *testing.B) appender {
			k := newKeys(b)
			ts := sumdb.NewTestServer(k.skey, func(path, version string) ([]byte, error) {
				var i int
				fmt.Sscanf(path, "example.com/mod%d", &i)
				_, _, text := gosum(i)
				return text, nil
			})
			return func(i int) error {
				p, v, _ := gosum(i)
				_, err := ts.Lookup(context.Background(), module.Version{Path: p, Version: v})
				return err
			}
		}},
	}
	for i, name := range benchBackends {
		appenders = append(appenders, struct {
			name string
			open func(b *testing.B) appender
		}{name, func(b *testing.B) appender {
			l := openBenchLog(b, i)
			return func(i int) error {
				p, v, text := gosum(i)
				_, _, err := l.Append(context.Background(), p, v, text)
				return err
			}
		}})
	}
	for _, a := range appenders {
		b.Run(a.name+"/flat", func(b *testing.B) {
			add := a.open(b)
			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			var elapsed time.Duration
			for b.Loop() {
				const workers, each = 4096, 10
				start := time.Now()
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						mine := make([]time.Duration, 0, each)
						for range each {
							t0 := time.Now()
							if err := add(int(next.Add(1))); err != nil {
								b.Error(err)
								return
							}
							mine = append(mine, time.Since(t0))
						}
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
					})
				}
				wg.Wait()
				elapsed += time.Since(start)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "records/s")
			b.ReportMetric(percentile(lat, 50), "p50-ms")
			b.ReportMetric(percentile(lat, 99), "p99-ms")
		})
		b.Run(a.name+"/rate10k", func(b *testing.B) {
			add := a.open(b)
			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			const rate = 10_000
			const period = time.Second / rate
			for b.Loop() {
				start := time.Now()
				var wg sync.WaitGroup
				for k := range 2 * rate {
					due := start.Add(time.Duration(k) * period)
					time.Sleep(time.Until(due))
					wg.Go(func() {
						t0 := time.Now()
						err := add(int(next.Add(1)))
						d := time.Since(t0)
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			slices.Sort(lat)
			b.ReportMetric(percentile(lat, 50), "p50-ms")
			b.ReportMetric(percentile(lat, 99), "p99-ms")
			b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// benchStore opens a new store of benchBackends[i] for a benchmark.
func benchStore(b *testing.B, i int) tlog.Store {
	b.Helper()
	var s tlog.Store
	var err error
	switch benchBackends[i] {
	case "sqlite":
		s, err = store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "sumdb.db"))
	case "postgres":
		s, err = store.OpenPostgres(context.Background(), storetest.PostgresURL(b))
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

var benchBackends = []string{"sqlite", "postgres"}

// largeKeys returns the keys of the signer key file $SUMDB_BENCH_KEY_FILE.
func largeKeys(b *testing.B) (note.Signer, note.Verifier) {
	file := os.Getenv("SUMDB_BENCH_KEY_FILE")
	if file == "" {
		b.Skip("set SUMDB_BENCH_KEY_FILE to the signer key of the large log")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	skey := strings.TrimSpace(string(data))
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64 of the algorithm byte and the seed>
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		b.Fatalf("signer key in %s: malformed", file)
	}
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey))
	if err != nil {
		b.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		b.Fatal(err)
	}
	return signer, verifier
}

// BenchmarkOpenLarge measures tlog.Open of the large log in an existing
// store ($SUMDB_BENCH_DATABASE_URL or $SUMDB_BENCH_SQLITE, signed by
// $SUMDB_BENCH_KEY_FILE): the check of the stored head and of the right
// edge of the tree, all a server does before it serves. It opens a store
// connection each time, as a starting server does.
//
//	SUMDB_BENCH_DATABASE_URL=postgres://... SUMDB_BENCH_KEY_FILE=... go test -run '^$' -bench OpenLarge -benchtime 5x ./tlog/
func BenchmarkOpenLarge(b *testing.B) {
	signer, verifier := largeKeys(b)
	opens := map[string]func() (tlog.Store, error){}
	if url := os.Getenv("SUMDB_BENCH_DATABASE_URL"); url != "" {
		opens["postgres"] = func() (tlog.Store, error) { return store.OpenPostgres(context.Background(), url) }
	}
	if file := os.Getenv("SUMDB_BENCH_SQLITE"); file != "" {
		opens["sqlite"] = func() (tlog.Store, error) { return store.OpenSQLite(context.Background(), file) }
	}
	for name, open := range opens {
		b.Run(name, func(b *testing.B) {
			var size int64
			for b.Loop() {
				s, err := open()
				if err != nil {
					b.Fatal(err)
				}
				l, err := tlog.Open(context.Background(), s, tlog.Config{Signer: signer, Verifier: verifier, RefreshInterval: -1})
				if err != nil {
					b.Fatal(err)
				}
				size = l.Head().Size
				l.Close()
				s.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/open")
			b.ReportMetric(float64(size), "records")
		})
	}
}
