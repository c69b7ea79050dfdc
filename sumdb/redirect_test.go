package sumdb

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sumdb/sumdb/internal/modproxy"
)

// A redirectLab serves HTTPS and plain HTTP for every name under
// example.com on loopback: its client trusts the test certificate and dials
// ports 443 and 8443 of any such name to one TLS server and port 80 to one
// plain server, so that a test can redirect between hosts, ports and
// schemes. A request is redirected where route says, or else served by h
// with a leading "/mirror" cut from its path; every request is recorded
// with its Authorization header.
type redirectLab struct {
	client *http.Client

	mu   sync.Mutex
	hits []string // "<URL> <Authorization>"; guarded by mu
}

// newRedirectLab starts a lab. route returns the Location to answer the
// request for u with, or "" to serve it.
func newRedirectLab(t *testing.T, h http.Handler, route func(u *url.URL) string) *redirectLab {
	t.Helper()
	lab := new(redirectLab)
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
	lab.client = &http.Client{Transport: tr}
	return lab
}

// takeHits returns the requests recorded since the last call.
func (lab *redirectLab) takeHits() []string {
	lab.mu.Lock()
	defer lab.mu.Unlock()
	hits := lab.hits
	lab.hits = nil
	return hits
}

// labAuth is the Authorization header that the user information
// secretUser:secretPass makes.
var labAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(secretUser+":"+secretPass))

// chainHits returns the requests a chain of redirects makes for each of
// the files: every link is "<URL prefix>%" or "<URL prefix>% A", where %
// stands for the file's path and A for labAuth.
func chainHits(files []string, chain ...string) []string {
	var hits []string
	for _, f := range files {
		for _, link := range chain {
			hits = append(hits, strings.Replace(strings.Replace(link, "%", f, 1), " A", " "+labAuth, 1))
		}
	}
	return hits
}

// redirectTo returns a route that answers every request to the origin
// from (and any path under it, if from has one) with a redirect to the same
// path under to.
func redirectTo(from, to string) func(u *url.URL) string {
	return func(u *url.URL) string {
		if s := u.String(); strings.HasPrefix(s, from) {
			return to + strings.TrimPrefix(s, from)
		}
		return ""
	}
}

// TestUpstreamRedirects checks which redirects of a proxy the upstream
// follows and where the credentials of the proxy's URL go: an https proxy
// must not send the fetch to plain http, where anyone on the path could
// change what gets logged, and no host but the proxy's own may see its
// credentials (net/http sends them on to a subdomain, or to the same host
// on another port or scheme).
func TestUpstreamRedirects(t *testing.T) {
	const path, version = "example.com/m", "v1.0.0"
	files := map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"}
	p := modproxy.New()
	if err := p.Add(modproxy.Module{Path: path, Version: version, Files: files}); err != nil {
		t.Fatal(err)
	}
	want := wantRecord(t, path, version, files)
	all := []string{"/example.com/m/@v/v1.0.0.info", "/example.com/m/@v/v1.0.0.mod", "/example.com/m/@v/v1.0.0.zip"}
	info := all[:1]
	loop := func(u *url.URL) string { return u.String() }

	tests := []struct {
		name     string
		proxy    string // the proxy URL, without the user information
		route    func(u *url.URL) string
		hits     []string
		wantErr  string // the whole message; "" for success
		wantLogs string // in the log's cause
	}{
		{
			name:    "https to http on the same host",
			proxy:   "https://proxy.example.com",
			route:   redirectTo("https://proxy.example.com", "http://proxy.example.com"),
			hits:    chainHits(info, "https://proxy.example.com% A"),
			wantErr: "upstream unavailable: example.com/m@v1.0.0: proxy redirected .info from https to plain http: refused",
			wantLogs: "refused redirect from https://proxy.example.com/example.com/m/@v/v1.0.0.info" +
				" to http://proxy.example.com/example.com/m/@v/v1.0.0.info: https must not redirect to plain http",
		},
		{
			name:    "https to http on another host, credentials and query masked",
			proxy:   "https://proxy.example.com",
			route:   redirectTo("https://proxy.example.com", "http://"+secretToken+"@cdn.example.com"),
			hits:    chainHits(info, "https://proxy.example.com% A"),
			wantErr: "upstream unavailable: example.com/m@v1.0.0: proxy redirected .info from https to plain http: refused",
			wantLogs: "refused redirect from https://proxy.example.com/example.com/m/@v/v1.0.0.info" +
				" to http://xxxxx@cdn.example.com/example.com/m/@v/v1.0.0.info",
		},
		{
			name:  "https to http after a hop",
			proxy: "https://proxy.example.com",
			route: func(u *url.URL) string {
				if u.Host == "proxy.example.com" {
					return "https://cdn.example.com" + u.Path
				}
				if u.Scheme == "https" {
					return "http://cdn.example.com" + u.Path + "?X-Signature=" + secretToken
				}
				return ""
			},
			hits:     chainHits(info, "https://proxy.example.com% A", "https://cdn.example.com%"),
			wantErr:  "upstream unavailable: example.com/m@v1.0.0: proxy redirected .info from https to plain http: refused",
			wantLogs: "to http://cdn.example.com/example.com/m/@v/v1.0.0.info?xxxxx: https must not redirect",
		},
		{
			name:  "another host",
			proxy: "https://proxy.example.com",
			route: redirectTo("https://proxy.example.com", "https://cdn.example.com"),
			hits:  chainHits(all, "https://proxy.example.com% A", "https://cdn.example.com%"),
		},
		{
			name:  "subdomain",
			proxy: "https://example.com",
			route: redirectTo("https://example.com", "https://cdn.example.com"),
			hits:  chainHits(all, "https://example.com% A", "https://cdn.example.com%"),
		},
		{
			name:  "another port",
			proxy: "https://proxy.example.com",
			route: redirectTo("https://proxy.example.com/example.com", "https://proxy.example.com:8443/mirror/example.com"),
			hits:  chainHits(all, "https://proxy.example.com% A", "https://proxy.example.com:8443/mirror%"),
		},
		{
			name:  "back to the proxy through another host",
			proxy: "https://proxy.example.com",
			route: func(u *url.URL) string {
				switch {
				case u.Host == "cdn.example.com":
					return "https://proxy.example.com/mirror" + u.Path
				case !strings.HasPrefix(u.Path, "/mirror/"):
					return "https://cdn.example.com" + u.Path
				}
				return ""
			},
			hits: chainHits(all, "https://proxy.example.com% A", "https://cdn.example.com%", "https://proxy.example.com/mirror%"),
		},
		{
			name:  "same host keeps the credentials",
			proxy: "https://proxy.example.com",
			route: redirectTo("https://proxy.example.com/example.com", "https://proxy.example.com/mirror/example.com"),
			hits:  chainHits(all, "https://proxy.example.com% A", "https://proxy.example.com/mirror% A"),
		},
		{
			name:     "loop",
			proxy:    "https://proxy.example.com",
			route:    loop,
			hits:     chainHits(slices.Repeat(info, 10), "https://proxy.example.com% A"),
			wantErr:  "upstream unavailable: example.com/m@v1.0.0: proxy redirected .info more than 10 times",
			wantLogs: "stopped after 10 redirects, at https://proxy.example.com/example.com/m/@v/v1.0.0.info",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lab := newRedirectLab(t, p, tt.route)
			var buf logBuffer
			u := newTestUpstream(t, UpstreamConfig{
				Proxy:  withUserinfo(tt.proxy, secretUser+":"+secretPass),
				Client: lab.client,
				Logger: slog.New(slog.NewTextHandler(&buf, nil)),
			})
			got, err := u.Fetch(t.Context(), path, version)
			logs := buf.String()
			if tt.wantErr == "" {
				if err != nil || string(got) != want {
					t.Errorf("Fetch = %q, %v, want %q, nil", got, err, want)
				}
			} else {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrUpstream) {
					t.Errorf("Fetch = %q, %v, want error %q", got, err, tt.wantErr)
				}
				checkNoSecret(t, "Fetch", err, logs)
				if !strings.Contains(logs, tt.wantLogs) {
					t.Errorf("log does not show %q:\n%s", tt.wantLogs, logs)
				}
			}
			if hits := lab.takeHits(); !slices.Equal(hits, tt.hits) {
				t.Errorf("requests (URL, Authorization):\n\t%s\nwant\n\t%s", strings.Join(hits, "\n\t"), strings.Join(tt.hits, "\n\t"))
			}
		})
	}
}

// TestUpstreamRedirectKeepsClientPolicy checks that a configured client's
// own CheckRedirect still has its say after the upstream's checks.
func TestUpstreamRedirectKeepsClientPolicy(t *testing.T) {
	lab := newRedirectLab(t, http.NotFoundHandler(), redirectTo("https://proxy.example.com", "https://cdn.example.com"))
	client := *lab.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u := newTestUpstream(t, UpstreamConfig{Proxy: "https://proxy.example.com", Client: &client})
	_, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
	if want := "upstream unavailable: example.com/m@v1.0.0: proxy answered 302 Found for .info"; err == nil || err.Error() != want {
		t.Errorf("Fetch with a client that follows no redirect = %v, want %q", err, want)
	}
	if hits := lab.takeHits(); len(hits) != 1 {
		t.Errorf("requests %q, want only the first", hits)
	}
}

// TestRemoteRedirects is TestUpstreamRedirects for the checksum database
// client: the database's own URL and the proxies asked whether they serve
// it.
func TestRemoteRedirects(t *testing.T) {
	t.Parallel()
	const name = "sumdb.test"
	const tree = "go.sum database tree\n1\n"
	vkey := newVerifierKey(t, name)
	db := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/db/latest", "/sumdb/" + name + "/latest":
			io.WriteString(w, tree)
		case "/sumdb/" + name + "/supported":
		default:
			http.NotFound(w, r)
		}
	})
	userinfo := secretUser + ":" + secretPass

	tests := []struct {
		name    string
		cfg     RemoteConfig // GOSUMDB's key and Client are filled in
		route   func(u *url.URL) string
		hits    []string
		wantErr string // contained in the error; "" for success
	}{
		{
			name:  "https to http",
			cfg:   RemoteConfig{GOSUMDB: "https://" + userinfo + "@db.example.com/db"},
			route: redirectTo("https://db.example.com", "http://db.example.com"),
			// Not retried: the server would answer the same.
			hits: []string{"https://db.example.com/db/latest " + labAuth},
			wantErr: "upstream unavailable: GET https://xxxxx@db.example.com/db/latest: refused redirect from https://db.example.com/db/latest" +
				" to http://db.example.com/db/latest: https must not redirect to plain http",
		},
		{
			name:  "proxy redirects to http when asked whether it serves the database",
			cfg:   RemoteConfig{GOPROXY: "https://" + userinfo + "@proxy.example.com"},
			route: redirectTo("https://proxy.example.com", "http://proxy.example.com"),
			hits:  []string{"https://proxy.example.com/sumdb/sumdb.test/supported " + labAuth},
			wantErr: "ask proxy whether it serves checksum database sumdb.test: upstream unavailable: GET https://xxxxx@proxy.example.com/sumdb/sumdb.test/supported:" +
				" refused redirect from https://proxy.example.com/sumdb/sumdb.test/supported to http://proxy.example.com/sumdb/sumdb.test/supported",
		},
		{
			name:  "another host",
			cfg:   RemoteConfig{GOSUMDB: "https://" + userinfo + "@db.example.com/db"},
			route: redirectTo("https://db.example.com", "https://cdn.example.com"),
			hits:  []string{"https://db.example.com/db/latest " + labAuth, "https://cdn.example.com/db/latest"},
		},
		{
			name:  "proxy redirects to a subdomain",
			cfg:   RemoteConfig{GOPROXY: "https://" + userinfo + "@example.com"},
			route: redirectTo("https://example.com", "https://cdn.example.com"),
			hits: []string{
				"https://example.com/sumdb/sumdb.test/supported " + labAuth, "https://cdn.example.com/sumdb/sumdb.test/supported",
				"https://example.com/sumdb/sumdb.test/latest " + labAuth, "https://cdn.example.com/sumdb/sumdb.test/latest",
			},
		},
		{
			name:    "loop",
			cfg:     RemoteConfig{GOSUMDB: "https://" + userinfo + "@db.example.com/db"},
			route:   func(u *url.URL) string { return u.String() },
			hits:    slices.Repeat([]string{"https://db.example.com/db/latest " + labAuth}, 10),
			wantErr: "upstream unavailable: GET https://xxxxx@db.example.com/db/latest: stopped after 10 redirects, at https://db.example.com/db/latest",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lab := newRedirectLab(t, db, tt.route)
			cfg := tt.cfg
			cfg.GOSUMDB = strings.TrimSpace(vkey + " " + cfg.GOSUMDB)
			cfg.Client = lab.client
			var buf logBuffer
			cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
			r, err := OpenRemote(t.Context(), cfg)
			var body []byte
			if err == nil {
				body, err = r.Get(t.Context(), "latest")
			}
			if tt.wantErr == "" {
				if err != nil || string(body) != tree {
					t.Errorf("Get(latest) = %q, %v, want %q", body, err, tree)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUpstream) {
					t.Errorf("OpenRemote and Get(latest) = %v, want an error containing %q", err, tt.wantErr)
				}
				checkNoSecret(t, "OpenRemote and Get(latest)", err, buf.String())
			}
			if hits := lab.takeHits(); !slices.Equal(hits, tt.hits) {
				t.Errorf("requests (URL, Authorization):\n\t%s\nwant\n\t%s", strings.Join(hits, "\n\t"), strings.Join(tt.hits, "\n\t"))
			}
		})
	}
}

// TestMaskURLError makes net/http repeat a redirect's URL in its errors, in
// each way it does, and checks that a guardedClient's errors show neither
// the token in its query nor its user information, where a plain
// http.Client's show them, and keep what callers test.
func TestMaskURLError(t *testing.T) {
	t.Parallel()
	const secret = "SeCrEtToKeN"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close() // nothing listens there any more: connection refused
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/refused":
			w.Header().Set("Location", "http://"+secret+":pw@"+gone+"/blob?sig="+secret)
		case "/badlocation":
			w.Header().Set("Location", "http://127.0.0.1:port"+secret+"/blob?sig="+secret)
		case "/loop":
			w.Header().Set("Location", "/loop?sig="+secret)
		case "/slow":
			w.Header().Set("Location", "/hang?sig="+secret)
		case "/hang":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) }) // before srv.Close, which waits for handlers

	for _, tc := range []struct {
		path string
		want func(error) bool // what callers test still holds
	}{
		{"/refused", func(err error) bool { var oerr *net.OpError; return errors.As(err, &oerr) }},
		{"/badlocation", func(err error) bool { return errors.Is(err, errBadLocation) }},
		{"/loop", func(err error) bool { var rerr *redirectError; return errors.As(err, &rerr) }},
		{"/slow", func(err error) bool { var nerr net.Error; return errors.As(err, &nerr) && nerr.Timeout() }},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			t.Parallel()
			do := func(c interface {
				Do(*http.Request) (*http.Response, error)
			}) error {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET %s succeeded", tc.path)
				}
				return err
			}
			plain := &http.Client{Timeout: 200 * time.Millisecond}
			if err := do(plain); !strings.Contains(err.Error(), secret) {
				t.Fatalf("http.Client error %q does not show the secret: this case tests nothing", err)
			}
			err := do(guardRedirects(plain))
			if strings.Contains(err.Error(), secret) {
				t.Errorf("guardedClient error %q shows the secret", err)
			}
			if !tc.want(err) {
				t.Errorf("guardedClient error %q (%T) lost what callers test", err, err)
			}
		})
	}
}
