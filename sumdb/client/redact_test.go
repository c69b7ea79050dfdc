package client

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
)

// TestRemoteRedactsUserinfo checks that no error of a Remote, no line of its
// log and not its Base (which reports show) holds the user information of
// the URL of the database or of a proxy.
func TestRemoteRedactsUserinfo(t *testing.T) {
	t.Parallel()
	const name = "sumdb.test"
	vkey := newVerifierKey(t, name)
	broken := newFakeServer(t)
	broken.answer("/db/latest", answer{502, "bad gateway"})
	broken.answer("/sumdb/"+name+"/supported", answer{500, "internal error"})
	addr := guardtest.ClosedAddr(t)

	for _, userinfo := range guardtest.SecretUserinfos {
		newLog := func() (*guardtest.Logs, *slog.Logger) {
			buf := new(guardtest.Logs)
			return buf, slog.New(slog.NewTextHandler(buf, nil))
		}

		// The database's own URL, unreachable and broken.
		for _, db := range []string{"http://" + addr, broken.URL + "/db"} {
			buf, logger := newLog()
			gosumdb := vkey + " " + guardtest.WithUserinfo(db, userinfo)
			r, err := Open(t.Context(), Config{GOSUMDB: gosumdb, Retries: 1, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(r.Base, userinfo) || !strings.Contains(r.Base, "//xxxxx@") {
				t.Errorf("Open(%q).Base = %q, want the URL with xxxxx for its user information", gosumdb, r.Base)
			}
			_, err = r.Get(t.Context(), "latest")
			if !errors.Is(err, ErrUpstream) {
				t.Errorf("Get(latest) from %s = %v, want ErrUpstream", db, err)
			}
			logs := buf.String()
			guardtest.CheckNoSecret(t, "Get(latest) from "+db+" with user information "+userinfo, err, logs)
			if !strings.Contains(err.Error(), "GET http://xxxxx@") || !strings.Contains(logs, "url=http://xxxxx@") {
				t.Errorf("Get(latest) from %s: error or log does not show the masked URL: %v\n%s", db, err, logs)
			}
		}

		// A proxy that fails when asked whether it serves the database.
		buf, logger := newLog()
		cfg := Config{GOSUMDB: vkey, GOPROXY: guardtest.WithUserinfo(broken.URL, userinfo), Logger: logger}
		_, err := Open(t.Context(), cfg)
		guardtest.CheckNoSecret(t, "Open with GOPROXY "+cfg.GOPROXY, err, buf.String())

		// Malformed configurations.
		for _, gosumdb := range []string{
			vkey + " ftp://" + userinfo + "@host.test",
			vkey + " http://" + userinfo + "@host.test x",
			vkey + " http//" + userinfo + "@host.test",
			vkey + " http://" + userinfo + "@host.test:port",
		} {
			_, err := Open(t.Context(), Config{GOSUMDB: gosumdb})
			guardtest.CheckNoSecret(t, "Open with GOSUMDB "+gosumdb, err, "")
		}
		for _, goproxy := range []string{
			"ftp://" + userinfo + "@host.test",
			"http//" + userinfo + "@host.test",
			"http://" + userinfo + "@host.test:port",
			"http://" + userinfo + "@" + addr,
		} {
			_, err := Open(t.Context(), Config{GOSUMDB: vkey, GOPROXY: goproxy})
			guardtest.CheckNoSecret(t, "Open with GOPROXY "+goproxy, err, "")
		}
	}
}

// TestRemoteSendsUserinfo checks that the database and the proxies still
// get the user information of their URLs as basic authentication.
func TestRemoteSendsUserinfo(t *testing.T) {
	t.Parallel()
	const name = "sumdb.test"
	const tree = "go.sum database tree\n1\n"
	vkey := newVerifierKey(t, name)
	rec := &guardtest.AuthRecorder{H: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/db/latest", "/sumdb/" + name + "/latest":
			io.WriteString(w, tree)
		case "/sumdb/" + name + "/supported":
		default:
			http.NotFound(w, r)
		}
	})}
	srv := httptest.NewServer(rec)
	defer srv.Close()

	for _, tt := range guardtest.UserinfoCases {
		for _, cfg := range []Config{
			{GOSUMDB: vkey + " " + guardtest.WithUserinfo(srv.URL, tt.Userinfo) + "/db/"},
			{GOSUMDB: vkey, GOPROXY: guardtest.WithUserinfo(srv.URL, tt.Userinfo) + "/"},
		} {
			r, err := Open(t.Context(), cfg)
			if err != nil {
				t.Fatalf("Open(%+v): %v", cfg, err)
			}
			if body, err := r.Get(t.Context(), "latest"); err != nil || string(body) != tree {
				t.Fatalf("Get(latest) with %+v = %q, %v", cfg, body, err)
			}
			rec.Check(t, tt.User, tt.Pass)
		}
	}
}
