package authfile

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestReloadSameSizeAndModTime checks that a change of the auth file that
// keeps its size (a bcrypt hash replaced by another is always the same
// length) and lands within the file system's timestamp granularity of the
// version last read (a tick of the kernel's coarse clock on Linux, a
// second or two on some file systems) is picked up: the old password is
// refused and the new one accepted. The test sets the modification time
// back to make the two versions look alike to a check of the time.
func TestReloadSameSizeAndModTime(t *testing.T) {
	e := newEnv(t, htpasswd(t, "alice", "wonderland")+"\n", Config{})
	if w := e.get("/latest", "192.0.2.1", basic("alice", "wonderland")); w.Code != 200 {
		t.Fatalf("GET /latest with the first password = %d, want 200", w.Code)
	}
	fi, err := os.Stat(e.file)
	if err != nil {
		t.Fatal(err)
	}
	e.write(htpasswd(t, "alice", "new-password") + "\n") // in place, same inode
	if err := os.Chtimes(e.file, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fi2, err := os.Stat(e.file); err != nil || fi2.Size() != fi.Size() {
		t.Fatalf("rewritten file: %v, size %d, want the same size %d", err, fi2.Size(), fi.Size())
	}
	for range 3 {
		e.tick()
		if w := e.get("/latest", "192.0.2.2", basic("alice", "wonderland")); w.Code != 401 {
			t.Errorf("GET /latest with the old password %ds after the change = %d, want 401", e.now.Load(), w.Code)
		}
		if w := e.get("/latest", "192.0.2.3", basic("alice", "new-password")); w.Code != 200 {
			t.Errorf("GET /latest with the new password after the change = %d, want 200", w.Code)
		}
	}
}

// TestNoBypassSpellings checks that no spelling of a path lets a request
// without credentials reach anything but the health checks: the wrapper
// and the inner handler read the same decoded path, and only the exact
// /healthz and /readyz pass.
func TestNoBypassSpellings(t *testing.T) {
	e := newEnv(t, htpasswd(t, "alice", "wonderland")+"\n", Config{})
	var reached []string
	h := e.auth.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.Method+" "+r.URL.Path)
	}))
	for _, tc := range []struct{ method, target string }{
		{"GET", "/%68ealthz"},
		{"GET", "//healthz"},
		{"GET", "/healthz/"},
		{"GET", "/healthz/.."},
		{"GET", "/healthz/../latest"},
		{"GET", "/healthz%2f..%2flatest"},
		{"GET", "/healthz?/latest"},
		{"HEAD", "/latest"},
		{"GET", "/HEALTHZ"},
		{"GET", "/readyz/../tile/8/0/000"},
		{"GET", "/metrics"},
		{"OPTIONS", "*"},
	} {
		reached = nil
		r := httptest.NewRequest(tc.method, "http://sum.test"+strings.TrimPrefix(tc.target, "*"), nil)
		if tc.target == "*" {
			r.URL.Path = "*"
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		for _, p := range reached {
			if p != tc.method+" /healthz" && p != tc.method+" /readyz" {
				t.Errorf("%s %s without credentials reached the inner handler as %q (answer %d)", tc.method, tc.target, p, w.Code)
			}
		}
		if len(reached) == 0 && w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials = %d, want 401", tc.method, tc.target, w.Code)
		}
	}
}

// TestErrorAnswersPrivate checks that the inner handler's error answers
// (404 with a public max-age, as the not-found cache gives, and 503) are
// made private too.
func TestErrorAnswersPrivate(t *testing.T) {
	e := newEnv(t, tokenLine("ci", "tok"), Config{})
	for _, code := range []int{404, 503, 500} {
		h := e.auth.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=60")
			http.Error(w, "no", code)
		}))
		r := httptest.NewRequest("GET", "/lookup/corp.example.com/secret@v1.0.0", nil)
		r.Header.Set("Authorization", "Bearer tok")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Result().Header.Get("Cache-Control"); got != "private, max-age=60" {
			t.Errorf("inner %d: Cache-Control %q, want private, max-age=60", code, got)
		}
	}
}
