package sumdb

import (
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sumdb/sumdb/internal/modproxy"
)

// The user information of the URLs in these tests: a token as the user
// name, a user name and a password, and a user name that holds a "/" (as a
// base64 token may), which net/http does not escape when it masks the
// password in its errors.
const (
	secretToken = "SECRETTOKEN"
	secretUser  = "sEcReTuSeR"
	secretPass  = "hunter2"
	slashUser   = "SlAsH/ToKeN" // escaped in URLs as SlAsH%2FToKeN
)

// secretUserinfos are the user informations of the tests, as written in a
// URL.
var secretUserinfos = []string{secretToken, secretUser + ":" + secretPass, "SlAsH%2FToKeN:" + secretPass}

// secretParts are the strings that no log line or error may show.
var secretParts = []string{secretToken, secretUser, secretPass, "SlAsH", "ToKeN"}

// withUserinfo returns the http:// or https:// URL rawURL with user
// information userinfo.
func withUserinfo(rawURL, userinfo string) string {
	return strings.Replace(rawURL, "://", "://"+userinfo+"@", 1)
}

// closedAddr returns the address of a TCP port on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// checkNoSecret fails the test if err, any error in its chain, or the log
// shows a part of the user information of the tests.
func checkNoSecret(t *testing.T, what string, err error, logs string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
	}
	var texts []string
	for _, e := range errorTree(err) {
		texts = append(texts, e.Error())
	}
	for _, s := range secretParts {
		for _, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("%s: error in the chain shows %q: %s", what, s, text)
			}
		}
		if strings.Contains(logs, s) {
			t.Errorf("%s: log shows %q:\n%s", what, s, logs)
		}
	}
}

// errorTree returns err and every error it wraps.
func errorTree(err error) []error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		errs = append(errs, errorTree(u.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			errs = append(errs, errorTree(e)...)
		}
	}
	return errs
}

// An authRecorder is an HTTP handler that records the Authorization header
// and the basic authentication of each request before serving it.
type authRecorder struct {
	h http.Handler

	mu    sync.Mutex
	auths []string // "<path> <Authorization> <user>:<password>"; guarded by mu
}

func (a *authRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	a.mu.Lock()
	rec := r.URL.Path + " " + r.Header.Get("Authorization")
	if ok {
		rec += " " + user + ":" + pass
	}
	a.auths = append(a.auths, rec)
	a.mu.Unlock()
	a.h.ServeHTTP(w, r)
}

// check fails the test unless every request so far, and at least one,
// authenticated as user with password.
func (a *authRecorder) check(t *testing.T, user, pass string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.auths) == 0 {
		t.Errorf("no request")
	}
	header := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	for _, rec := range a.auths {
		path, got, _ := strings.Cut(rec, " ")
		if want := header + " " + user + ":" + pass; got != want {
			t.Errorf("request for %s has Authorization and basic authentication %q, want %q", path, got, want)
		}
	}
	a.auths = nil
}

// TestUpstreamRedactsUserinfo checks that neither the fetch log nor the
// error of a fetch from an unreachable proxy shows the user information of
// its URL: net/http masks only a password in its errors.
func TestUpstreamRedactsUserinfo(t *testing.T) {
	addr := closedAddr(t)
	for _, userinfo := range secretUserinfos {
		var buf logBuffer
		u := newTestUpstream(t, UpstreamConfig{Proxy: withUserinfo("http://"+addr, userinfo), Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		_, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
		if !errors.Is(err, ErrUpstream) {
			t.Errorf("Fetch from a closed port = %v, want ErrUpstream", err)
		}
		logs := buf.String()
		checkNoSecret(t, "Fetch from http://"+userinfo+"@"+addr, err, logs)
		if !strings.Contains(logs, `cause="Get \"http://127.0.0.1:`) || !strings.Contains(logs, "proxy=http://xxxxx@127.0.0.1:") {
			t.Errorf("the log does not show the cause and the masked proxy:\n%s", logs)
		}
	}
}

// userinfoCases are the user information of URLs, as written in them, and
// the user name and password it must authenticate as.
var userinfoCases = []struct{ userinfo, user, pass string }{
	{secretToken, secretToken, ""},
	{secretUser + ":" + secretPass, secretUser, secretPass},
	{"SlAsH%2FToKeN:" + secretPass, slashUser, secretPass},
	{secretUser + ":", secretUser, ""},
}

// TestUpstreamSendsUserinfo checks that the proxy still gets the user
// information of its URL as basic authentication, in every request.
func TestUpstreamSendsUserinfo(t *testing.T) {
	p := modproxy.New()
	if err := p.Add(modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/m\n"}}); err != nil {
		t.Fatal(err)
	}
	rec := &authRecorder{h: p}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	for _, tt := range userinfoCases {
		u := newTestUpstream(t, UpstreamConfig{Proxy: withUserinfo(srv.URL, tt.userinfo)})
		if _, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0"); err != nil {
			t.Fatalf("Fetch with user information %q: %v", tt.userinfo, err)
		}
		rec.check(t, tt.user, tt.pass)
	}
	// Without user information, no authentication.
	u := newTestUpstream(t, UpstreamConfig{Proxy: srv.URL})
	if _, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	for _, r := range rec.auths {
		if path, auth, _ := strings.Cut(r, " "); auth != "" {
			t.Errorf("request for %s without user information has Authorization %q", path, auth)
		}
	}
	rec.mu.Unlock()
}

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
	addr := closedAddr(t)

	for _, userinfo := range secretUserinfos {
		newLog := func() (*logBuffer, *slog.Logger) {
			buf := new(logBuffer)
			return buf, slog.New(slog.NewTextHandler(buf, nil))
		}

		// The database's own URL, unreachable and broken.
		for _, db := range []string{"http://" + addr, broken.URL + "/db"} {
			buf, logger := newLog()
			gosumdb := vkey + " " + withUserinfo(db, userinfo)
			r, err := OpenRemote(t.Context(), RemoteConfig{GOSUMDB: gosumdb, Retries: 1, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(r.Base, userinfo) || !strings.Contains(r.Base, "//xxxxx@") {
				t.Errorf("OpenRemote(%q).Base = %q, want the URL with xxxxx for its user information", gosumdb, r.Base)
			}
			_, err = r.Get(t.Context(), "latest")
			if !errors.Is(err, ErrUpstream) {
				t.Errorf("Get(latest) from %s = %v, want ErrUpstream", db, err)
			}
			logs := buf.String()
			checkNoSecret(t, "Get(latest) from "+db+" with user information "+userinfo, err, logs)
			if !strings.Contains(err.Error(), "GET http://xxxxx@") || !strings.Contains(logs, "url=http://xxxxx@") {
				t.Errorf("Get(latest) from %s: error or log does not show the masked URL: %v\n%s", db, err, logs)
			}
		}

		// A proxy that fails when asked whether it serves the database.
		buf, logger := newLog()
		cfg := RemoteConfig{GOSUMDB: vkey, GOPROXY: withUserinfo(broken.URL, userinfo), Logger: logger}
		_, err := OpenRemote(t.Context(), cfg)
		checkNoSecret(t, "OpenRemote with GOPROXY "+cfg.GOPROXY, err, buf.String())

		// Malformed configurations.
		for _, gosumdb := range []string{
			vkey + " ftp://" + userinfo + "@host.test",
			vkey + " http://" + userinfo + "@host.test x",
			vkey + " http//" + userinfo + "@host.test",
			vkey + " http://" + userinfo + "@host.test:port",
		} {
			_, err := OpenRemote(t.Context(), RemoteConfig{GOSUMDB: gosumdb})
			checkNoSecret(t, "OpenRemote with GOSUMDB "+gosumdb, err, "")
		}
		for _, goproxy := range []string{
			"ftp://" + userinfo + "@host.test",
			"http//" + userinfo + "@host.test",
			"http://" + userinfo + "@host.test:port",
			"http://" + userinfo + "@" + addr,
		} {
			_, err := OpenRemote(t.Context(), RemoteConfig{GOSUMDB: vkey, GOPROXY: goproxy})
			checkNoSecret(t, "OpenRemote with GOPROXY "+goproxy, err, "")
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
	rec := &authRecorder{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

	for _, tt := range userinfoCases {
		for _, cfg := range []RemoteConfig{
			{GOSUMDB: vkey + " " + withUserinfo(srv.URL, tt.userinfo) + "/db/"},
			{GOSUMDB: vkey, GOPROXY: withUserinfo(srv.URL, tt.userinfo) + "/"},
		} {
			r, err := OpenRemote(t.Context(), cfg)
			if err != nil {
				t.Fatalf("OpenRemote(%+v): %v", cfg, err)
			}
			if body, err := r.Get(t.Context(), "latest"); err != nil || string(body) != tree {
				t.Fatalf("Get(latest) with %+v = %q, %v", cfg, body, err)
			}
			rec.check(t, tt.user, tt.pass)
		}
	}
}
