package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/sumdb/explorer"
)

// BenchmarkProtocolRouting measures the protocol's answers through serve's
// handler with and without the explorer in front: a cached lookup, and a
// full tile, read from memory. The explorer only adds a test of the path.
//
//	go test ./cmd/sumdb -run '^$' -bench ProtocolRouting -count 8 | benchstat -col /explorer -
func BenchmarkProtocolRouting(b *testing.B) {
	db := sumdbtest.MustStart(b, sumdbtest.Options{})
	db.AppendSynthetic("bench", 300)
	ex, err := explorer.New(explorer.Config{Log: db.Log, Index: db.Store.(explorer.Index), VKey: db.Key.VKey})
	if err != nil {
		b.Fatal(err)
	}
	lookup := "/lookup/example.com/bench/m7@v1.0.0"
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"explorer=off", db.Server},
		{"explorer=on", withExplorer(db.Server, ex)},
	} {
		for _, path := range []string{lookup, "/tile/8/0/000"} {
			name := "lookup"
			if path != lookup {
				name = "tile"
			}
			b.Run(bc.name+"/endpoint="+name, func(b *testing.B) {
				r := httptest.NewRequest("GET", path, nil)
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, r) // fill the caches
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s = %d %q", path, w.Code, w.Body)
				}
				for b.Loop() {
					w := httptest.NewRecorder()
					bc.h.ServeHTTP(w, r)
				}
			})
		}
	}
}
