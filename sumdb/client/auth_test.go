package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sumdb/sumdb/internal/goauth"
)

// A recorder is a TLS server that records the Authorization header of
// each request it gets, and answers with handle.
type recorder struct {
	srv *httptest.Server

	mu   sync.Mutex
	seen []string // guarded by mu; "path Authorization" of each request
}

func newRecorder(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.URL.Path+" "+r.Header.Get("Authorization"))
		rec.mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) requests() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.seen...)
}

// trusting returns an HTTP client that trusts the certificates of srvs.
func trusting(srvs ...*httptest.Server) *http.Client {
	pool := x509.NewCertPool()
	for _, s := range srvs {
		pool.AddCert(s.Certificate())
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// netrcAuth returns the goauth credentials of a netrc file of content.
func netrcAuth(t *testing.T, content string) *goauth.Credentials {
	t.Helper()
	file := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := goauth.New("netrc", func(k string) string {
		if k == "NETRC" {
			return file
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRemoteAuth checks that the credentials of GOAUTH reach the database,
// and nobody a redirect leads to on another origin.
func TestRemoteAuth(t *testing.T) {
	t.Parallel()
	const want = "Basic YWxpY2U6d29uZGVybGFuZA==" // alice:wonderland
	other := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("from elsewhere")) })
	db := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != want:
			http.Error(w, "who are you?", http.StatusUnauthorized)
		case r.URL.Path == "/away":
			http.Redirect(w, r, other.srv.URL+"/blob", http.StatusFound)
		default:
			w.Write([]byte("the answer"))
		}
	})
	host := strings.TrimPrefix(db.srv.URL, "https://")
	auth := netrcAuth(t, "machine "+host+" login alice password wonderland\n")
	r, err := Open(t.Context(), Config{GOSUMDB: newVerifierKey(t, "sumdb.test") + " " + db.srv.URL, Client: trusting(db.srv, other.srv), Auth: auth, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := r.Get(t.Context(), "latest"); err != nil || string(body) != "the answer" {
		t.Fatalf("Get(latest) = %q, %v; want the answer", body, err)
	}
	if body, err := r.Get(t.Context(), "away"); err != nil || string(body) != "from elsewhere" {
		t.Fatalf("Get(away) = %q, %v; want the other server's answer", body, err)
	}
	if got := db.requests(); len(got) != 2 || got[0] != "/latest "+want || got[1] != "/away "+want {
		t.Errorf("database got %q, want /latest and /away with the credentials", got)
	}
	if got := other.requests(); len(got) != 1 || got[0] != "/blob " {
		t.Errorf("other origin got %q, want /blob without credentials", got)
	}

	// Without credentials for the host, a clear refusal.
	r, err = Open(t.Context(), Config{GOSUMDB: newVerifierKey(t, "sumdb.test") + " " + db.srv.URL, Client: trusting(db.srv), Auth: netrcAuth(t, "machine other.example login alice password wonderland\n"), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(t.Context(), "latest")
	if err == nil || !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "401 Unauthorized: who are you?; the checksum database is readable only by its users: give your credentials in .netrc (machine "+host+" login USER password PASSWORD)") {
		t.Errorf("Get without credentials: %v, want the server's reason and what to do", err)
	}
}

// TestRemoteAuthPlainHTTP checks that no credentials are sent over plain
// http, even to the loopback, as the go command sends none.
func TestRemoteAuthPlainHTTP(t *testing.T) {
	t.Parallel()
	var got []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "who are you?", http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	r, err := Open(t.Context(), Config{GOSUMDB: newVerifierKey(t, "sumdb.test") + " " + srv.URL, Auth: netrcAuth(t, "machine "+host+" login alice password wonderland\n"), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(t.Context(), "latest")
	if err == nil || !strings.Contains(err.Error(), "credentials are sent only over https") {
		t.Errorf("Get over http: %v, want a refusal saying credentials need https", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "" {
		t.Errorf("server got Authorization %q, want one request without", got)
	}
}

// refreshing is an Authenticator that knows its credentials only after a
// refusal, as GOAUTH's git mode does.
type refreshing struct {
	mu      sync.Mutex
	known   bool // guarded by mu
	refresh int  // guarded by mu; calls of Refresh
}

func (a *refreshing) Apply(req *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.known {
		req.SetBasicAuth("alice", "from-git")
	}
}

func (a *refreshing) Refresh(resp *http.Response) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh++
	if a.known {
		return false, errors.New("git gave nothing new")
	}
	a.known = true
	return true, nil
}

// TestRemoteAuthRefresh checks that a request refused for its credentials
// is repeated once with the ones Refresh found, and not again.
func TestRemoteAuthRefresh(t *testing.T) {
	t.Parallel()
	ok := true
	var mu sync.Mutex
	db := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if u, p, _ := r.BasicAuth(); !ok || u != "alice" || p != "from-git" {
			http.Error(w, "who are you?", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("the answer"))
	})
	a := &refreshing{}
	r, err := Open(t.Context(), Config{GOSUMDB: newVerifierKey(t, "sumdb.test") + " " + db.srv.URL, Client: trusting(db.srv), Auth: a, Retries: 3})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := r.Get(t.Context(), "latest"); err != nil || string(body) != "the answer" {
		t.Fatalf("Get = %q, %v; want the answer after a refresh", body, err)
	}
	if got := db.requests(); len(got) != 2 || got[0] != "/latest " || !strings.HasPrefix(got[1], "/latest Basic ") {
		t.Errorf("requests %q, want one without credentials, one with", got)
	}
	// Credentials refused: Refresh once, no retry, its reason in the error.
	mu.Lock()
	ok = false
	mu.Unlock()
	_, err = r.Get(t.Context(), "latest")
	if err == nil || !strings.Contains(err.Error(), "(git gave nothing new)") {
		t.Errorf("Get with refused credentials: %v, want the reason Refresh gave", err)
	}
	if got := db.requests(); len(got) != 3 {
		t.Errorf("%d requests, want 3: a refused request is not retried", len(got))
	}
}
