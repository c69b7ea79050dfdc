package sumdb

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/modproxy"
)

// TestRedirectTokenNotShown follows a redirect to a pre-signed storage URL
// (a token in its query, as a proxy that keeps its zips in a bucket gives
// out) whose server cannot be reached. redirectError masks such a query
// since "a redirect may carry a token", but a transport error on the
// redirected request is net/http's *url.Error, which repeats the whole
// Location: neither the upstream's log line nor the checksum database
// client's error may show the token.
func TestRedirectTokenNotShown(t *testing.T) {
	t.Parallel()
	const token = "X-Amz-Signature=pReSiGnEdSeCrEt"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A user name may be a token too.
	gone := "http://uSeRtOkEn@" + l.Addr().String() + "/blob?" + token
	l.Close() // nothing listens there any more: connection refused

	t.Run("upstream", func(t *testing.T) {
		t.Parallel()
		const path, version = "example.com/m", "v1.0.0"
		p := modproxy.New()
		if err := p.Add(modproxy.Module{Path: path, Version: version, Files: map[string]string{"go.mod": "module example.com/m\n"}}); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, ".zip") {
				http.Redirect(w, r, gone, http.StatusFound)
				return
			}
			p.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		var buf logBuffer
		u := newTestUpstream(t, UpstreamConfig{Proxy: srv.URL, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
		_, err := u.Fetch(t.Context(), path, version)
		if err == nil {
			t.Fatal("Fetch through an unreachable redirect succeeded")
		}
		if shows(err.Error()+buf.String(), "pReSiGnEdSeCrEt", "uSeRtOkEn") {
			t.Errorf("the redirect's token is shown:\nerror: %v\nlog: %s", err, buf.String())
		}
	})

	t.Run("remote", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, gone, http.StatusFound)
		}))
		t.Cleanup(srv.Close)
		var buf logBuffer
		r, err := OpenRemote(t.Context(), RemoteConfig{
			GOSUMDB: newVerifierKey(t, "sumdb.test") + " " + srv.URL,
			Retries: -1,
			Logger:  slog.New(slog.NewTextHandler(&buf, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Get(t.Context(), "latest")
		if err == nil {
			t.Fatal("Get through an unreachable redirect succeeded")
		}
		if shows(err.Error()+buf.String(), "pReSiGnEdSeCrEt", "uSeRtOkEn") {
			t.Errorf("the redirect's token is shown:\nerror: %v\nlog: %s", err, buf.String())
		}
	})
}

// shows reports whether s contains any of secrets.
func shows(s string, secrets ...string) bool {
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}
