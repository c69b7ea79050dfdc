package client

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestRemoteErrUnauthorized checks that the refusals of credentials, and
// only they, are ErrUnauthorized, still ErrUpstream, and that the mark
// adds nothing to the message.
func TestRemoteErrUnauthorized(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code         int
		unauthorized bool
	}{
		{http.StatusUnauthorized, true},
		{http.StatusForbidden, true},
		{http.StatusNotFound, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadRequest, false},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			db := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "the reason", tc.code) })
			r, err := Open(t.Context(), Config{GOSUMDB: newVerifierKey(t, "sumdb.test") + " " + db.srv.URL, Client: trusting(db.srv), Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Get(t.Context(), "latest")
			if err == nil {
				t.Fatalf("Get(latest) answered %d = nil error, want one", tc.code)
			}
			if got := errors.Is(err, ErrUnauthorized); got != tc.unauthorized {
				t.Errorf("Get(latest) answered %d = %v; errors.Is ErrUnauthorized %v, want %v", tc.code, err, got, tc.unauthorized)
			}
			if tc.unauthorized && !errors.Is(err, ErrUpstream) {
				t.Errorf("Get(latest) answered %d = %v; not ErrUpstream", tc.code, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "%!") || strings.Contains(msg, "{}") || strings.TrimSpace(msg) != msg || strings.HasSuffix(msg, ";") || strings.HasSuffix(msg, ":") {
				t.Errorf("Get(latest) answered %d: message %q, want a clean one", tc.code, msg)
			}
			if !strings.Contains(msg, "the reason") {
				t.Errorf("Get(latest) answered %d: message %q, want the server's reason", tc.code, msg)
			}
		})
	}
}
