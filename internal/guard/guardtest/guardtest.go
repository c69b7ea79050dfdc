// Package guardtest is the test support of package guard: user information
// to put in URLs, a lab of hosts that redirect between names, ports and
// schemes, and checks that no error or log line shows a secret, for the
// tests of every client that requests configured URLs.
package guardtest

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// The user information of the URLs of the tests: a token as the user
// name, a user name and a password, and a user name that holds a "/" (as a
// base64 token may), which net/http does not escape when it masks the
// password in its errors.
const (
	SecretToken = "SECRETTOKEN"
	SecretUser  = "sEcReTuSeR"
	SecretPass  = "hunter2"
	SlashUser   = "SlAsH/ToKeN" // escaped in URLs as SlAsH%2FToKeN
)

// SecretUserinfos are the user informations of the tests, as written in a
// URL.
var SecretUserinfos = []string{SecretToken, SecretUser + ":" + SecretPass, "SlAsH%2FToKeN:" + SecretPass}

// secretParts are the strings that no log line or error may show.
var secretParts = []string{SecretToken, SecretUser, SecretPass, "SlAsH", "ToKeN"}

// WithUserinfo returns the http:// or https:// URL rawURL with user
// information userinfo.
func WithUserinfo(rawURL, userinfo string) string {
	return strings.Replace(rawURL, "://", "://"+userinfo+"@", 1)
}

// ClosedAddr returns the address of a TCP port on which nothing listens.
func ClosedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// CheckNoSecret fails the test if err, any error in its chain, or the log
// shows a part of the user information of the tests.
func CheckNoSecret(t *testing.T, what string, err error, logs string) {
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

// An AuthRecorder is an HTTP handler that records the Authorization header
// and the basic authentication of each request before serving it.
type AuthRecorder struct {
	H http.Handler // serves the requests

	mu    sync.Mutex
	auths []string // "<path> <Authorization> <user>:<password>"; guarded by mu
}

func (a *AuthRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	a.mu.Lock()
	rec := r.URL.Path + " " + r.Header.Get("Authorization")
	if ok {
		rec += " " + user + ":" + pass
	}
	a.auths = append(a.auths, rec)
	a.mu.Unlock()
	a.H.ServeHTTP(w, r)
}

// Check fails the test unless every request since the last Check or
// Take, and at least one, authenticated as user with password.
func (a *AuthRecorder) Check(t *testing.T, user, pass string) {
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

// Take returns the requests recorded since the last Check or Take, each
// as "<path> <Authorization>" and, with basic authentication,
// " <user>:<password>".
func (a *AuthRecorder) Take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	auths := a.auths
	a.auths = nil
	return auths
}

// UserinfoCases are the user information of URLs, as written in them, and
// the user name and password it must authenticate as.
var UserinfoCases = []struct{ Userinfo, User, Pass string }{
	{SecretToken, SecretToken, ""},
	{SecretUser + ":" + SecretPass, SecretUser, SecretPass},
	{"SlAsH%2FToKeN:" + SecretPass, SlashUser, SecretPass},
	{SecretUser + ":", SecretUser, ""},
}

// A Lab serves HTTPS and plain HTTP for every name under example.com on
// loopback: its Client trusts the test certificate and dials ports 443 and
// 8443 of any such name to one TLS server and port 80 to one plain server,
// so that a test can redirect between hosts, ports and schemes. A request
// is redirected where route says, or else served by h with a leading
// "/mirror" cut from its path; every request is recorded with its
// Authorization header.
type Lab struct {
	Client *http.Client // reaches the lab's names

	mu   sync.Mutex
	hits []string // "<URL> <Authorization>"; guarded by mu
}

// NewLab starts a lab, stopped when the test ends. route returns the
// Location to answer the request for u with, or "" to serve it.
func NewLab(t *testing.T, h http.Handler, route func(u *url.URL) string) *Lab {
	t.Helper()
	lab := new(Lab)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
		if r.TLS != nil {
			u.Scheme = "https"
		}
		lab.mu.Lock()
		lab.hits = append(lab.hits, strings.TrimSpace(u.String()+" "+r.Header.Get("Authorization")))
		lab.mu.Unlock()
		if loc := route(u); loc != "" {
			http.Redirect(w, r, loc, http.StatusFound)
			return
		}
		r = r.Clone(r.Context())
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/mirror")
		r.URL.RawPath = ""
		h.ServeHTTP(w, r)
	})
	tlsSrv := httptest.NewTLSServer(handler)
	t.Cleanup(tlsSrv.Close)
	plain := httptest.NewServer(handler)
	t.Cleanup(plain.Close)

	tr := tlsSrv.Client().Transport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if host == "example.com" || strings.HasSuffix(host, ".example.com") {
			switch port {
			case "443", "8443":
				return d.DialContext(ctx, network, tlsSrv.Listener.Addr().String())
			case "80":
				return d.DialContext(ctx, network, plain.Listener.Addr().String())
			}
		}
		return nil, fmt.Errorf("redirect lab: nothing at %s", addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	lab.Client = &http.Client{Transport: tr}
	return lab
}

// TakeHits returns the requests recorded since the last call.
func (lab *Lab) TakeHits() []string {
	lab.mu.Lock()
	defer lab.mu.Unlock()
	hits := lab.hits
	lab.hits = nil
	return hits
}

// LabAuth is the Authorization header that the user information
// SecretUser:SecretPass makes.
var LabAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(SecretUser+":"+SecretPass))

// ChainHits returns the requests a chain of redirects makes for each of
// the files: every link is "<URL prefix>%" or "<URL prefix>% A", where %
// stands for the file's path and A for LabAuth.
func ChainHits(files []string, chain ...string) []string {
	var hits []string
	for _, f := range files {
		for _, link := range chain {
			hits = append(hits, strings.Replace(strings.Replace(link, "%", f, 1), " A", " "+LabAuth, 1))
		}
	}
	return hits
}

// RedirectTo returns a route that answers every request to the origin
// from (and any path under it, if from has one) with a redirect to the same
// path under to.
func RedirectTo(from, to string) func(u *url.URL) string {
	return func(u *url.URL) string {
		if s := u.String(); strings.HasPrefix(s, from) {
			return to + strings.TrimPrefix(s, from)
		}
		return ""
	}
}

// Shows reports whether s contains any of secrets.
func Shows(s string, secrets ...string) bool {
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

// A Logs is a buffer of log lines, safe for concurrent writes, for a
// logger under test whose lines are then checked.
type Logs struct {
	mu  sync.Mutex
	buf []byte
}

func (b *Logs) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// String returns the lines written so far.
func (b *Logs) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
