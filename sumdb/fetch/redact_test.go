package fetch

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
	"github.com/sumdb/sumdb/internal/modproxy"
)

// TestUpstreamRedactsUserinfo checks that neither the fetch log nor the
// error of a fetch from an unreachable proxy shows the user information of
// its URL: net/http masks only a password in its errors.
func TestUpstreamRedactsUserinfo(t *testing.T) {
	addr := guardtest.ClosedAddr(t)
	for _, userinfo := range guardtest.SecretUserinfos {
		var buf guardtest.Logs
		u := newTestUpstream(t, Config{Proxy: guardtest.WithUserinfo("http://"+addr, userinfo), Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		_, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
		if !errors.Is(err, ErrUpstream) {
			t.Errorf("Fetch from a closed port = %v, want ErrUpstream", err)
		}
		logs := buf.String()
		guardtest.CheckNoSecret(t, "Fetch from http://"+userinfo+"@"+addr, err, logs)
		if !strings.Contains(logs, `cause="Get \"http://127.0.0.1:`) || !strings.Contains(logs, "proxy=http://xxxxx@127.0.0.1:") {
			t.Errorf("the log does not show the cause and the masked proxy:\n%s", logs)
		}
	}
}

// TestUpstreamSendsUserinfo checks that the proxy still gets the user
// information of its URL as basic authentication, in every request.
func TestUpstreamSendsUserinfo(t *testing.T) {
	p := modproxy.New()
	if err := p.Add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/m\n"}}); err != nil {
		t.Fatal(err)
	}
	rec := &guardtest.AuthRecorder{H: p}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	for _, tt := range guardtest.UserinfoCases {
		u := newTestUpstream(t, Config{Proxy: guardtest.WithUserinfo(srv.URL, tt.Userinfo)})
		if _, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0"); err != nil {
			t.Fatalf("Fetch with user information %q: %v", tt.Userinfo, err)
		}
		rec.Check(t, tt.User, tt.Pass)
	}
	// Without user information, no authentication.
	u := newTestUpstream(t, Config{Proxy: srv.URL})
	if _, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.Take() {
		if path, auth, _ := strings.Cut(r, " "); auth != "" {
			t.Errorf("request for %s without user information has Authorization %q", path, auth)
		}
	}
}
