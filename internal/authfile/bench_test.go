package authfile

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWrap measures what the auth file adds to a request the server
// answers at once (a cached tile): none, a user's Basic credentials after
// the first check (remembered, so no bcrypt), and a bearer token. The
// clock is fixed, so that the file is not read again during the run.
//
//	go test ./internal/authfile -run '^$' -bench Wrap -count 8 | benchstat -col /auth -
func BenchmarkWrap(b *testing.B) {
	file := filepath.Join(b.TempDir(), "users")
	if err := os.WriteFile(file, []byte(htpasswd(b, "alice", "wonderland")+"\n"+tokenLine("ci", "s3cret-token")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	tile := make([]byte, 8192)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(tile)
	})
	a, err := New(Config{File: file, Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, auth string
		h          http.Handler
	}{
		{"auth=none", "", inner},
		{"auth=basic", basic("alice", "wonderland"), a.Wrap(inner)},
		{"auth=bearer", "Bearer s3cret-token", a.Wrap(inner)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/tile/8/0/000", nil)
			r.RemoteAddr = "192.0.2.1:1234"
			if bc.auth != "" {
				r.Header.Set("Authorization", bc.auth)
			}
			w := httptest.NewRecorder()
			bc.h.ServeHTTP(w, r) // the first check, with bcrypt
			if w.Code != http.StatusOK {
				b.Fatalf("GET with %q = %d, want 200", bc.auth, w.Code)
			}
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, r)
			}
		})
	}
}
