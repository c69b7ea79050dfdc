package sumdb

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestLatestFunc checks that ServerConfig.Latest, when set, gives the body
// of /latest: its note, 503 for an error, 404 for nil; and that an empty
// log answers 404 without asking it.
func TestLatestFunc(t *testing.T) {
	var (
		mu    sync.Mutex
		body  []byte // guarded by mu
		err   error  // guarded by mu
		calls int    // guarded by mu
	)
	e := newEnv(t, backends[0], envOptions{cfg: ServerConfig{Latest: func(ctx context.Context) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("Latest called without a deadline, want the store timeout")
		}
		return body, err
	}}})
	code, _, _ := e.get("/latest")
	mu.Lock()
	n := calls
	mu.Unlock()
	if code != http.StatusNotFound || n != 0 {
		t.Errorf("GET /latest of an empty log = %d after %d calls of Latest, want 404 after 0", code, n)
	}
	if _, _, err := e.log.Append(t.Context(), "example.com/m", "v1.0.0", synthText("example.com/m", "v1.0.0")); err != nil {
		t.Fatal(err)
	}
	head := string(e.log.Head().Note)
	for _, tt := range []struct {
		name string
		body []byte
		err  error
		code int
		want string
	}{
		{"cosigned", []byte(head + "— witness.test AAAA\n"), nil, http.StatusOK, head + "— witness.test AAAA\n"},
		{"error", nil, errors.New("store down"), http.StatusServiceUnavailable, "try again"},
		{"none", nil, nil, http.StatusNotFound, "no tree head"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			body, err = tt.body, tt.err
			mu.Unlock()
			code, _, got := e.get("/latest")
			if code != tt.code || !strings.Contains(string(got), tt.want) {
				t.Errorf("GET /latest = %d %q, want %d with %q", code, got, tt.code, tt.want)
			}
		})
	}
}
