package fetch

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
	"github.com/sumdb/sumdb/internal/modproxy"
)

// TestUpstreamRedirectTokenNotShown follows a redirect of a proxy to a
// pre-signed storage URL (a token in its query, as a proxy that keeps its
// zips in a bucket gives out) whose server cannot be reached.
// guard.RedirectError masks such a query since "a redirect may carry a
// token", but a transport error on the redirected request is net/http's
// *url.Error, which repeats the whole Location: neither the upstream's log
// line nor its error may show the token.
func TestUpstreamRedirectTokenNotShown(t *testing.T) {
	t.Parallel()
	// A user name may be a token too.
	gone := "http://uSeRtOkEn@" + guardtest.ClosedAddr(t) + "/blob?X-Amz-Signature=pReSiGnEdSeCrEt"
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
	var buf guardtest.Logs
	u := newTestUpstream(t, Config{Proxy: srv.URL, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	_, err := u.Fetch(t.Context(), path, version)
	if err == nil {
		t.Fatal("Fetch through an unreachable redirect succeeded")
	}
	if guardtest.Shows(err.Error()+buf.String(), "pReSiGnEdSeCrEt", "uSeRtOkEn") {
		t.Errorf("the redirect's token is shown:\nerror: %v\nlog: %s", err, buf.String())
	}
}
