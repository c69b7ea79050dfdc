package client

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
)

// TestRemoteRedirectTokenNotShown follows a redirect of a checksum database
// to a pre-signed storage URL (a token in its query) whose server cannot be
// reached. guard.RedirectError masks such a query since "a redirect may
// carry a token", but a transport error on the redirected request is
// net/http's *url.Error, which repeats the whole Location: neither the
// client's error nor its log may show the token.
func TestRemoteRedirectTokenNotShown(t *testing.T) {
	t.Parallel()
	// A user name may be a token too.
	gone := "http://uSeRtOkEn@" + guardtest.ClosedAddr(t) + "/blob?X-Amz-Signature=pReSiGnEdSeCrEt"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, gone, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	var buf guardtest.Logs
	r, err := Open(t.Context(), Config{
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
	if guardtest.Shows(err.Error()+buf.String(), "pReSiGnEdSeCrEt", "uSeRtOkEn") {
		t.Errorf("the redirect's token is shown:\nerror: %v\nlog: %s", err, buf.String())
	}
}
