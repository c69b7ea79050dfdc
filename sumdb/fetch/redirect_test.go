package fetch

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
	"github.com/sumdb/sumdb/internal/modproxy"
)

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
			route:   guardtest.RedirectTo("https://proxy.example.com", "http://proxy.example.com"),
			hits:    guardtest.ChainHits(info, "https://proxy.example.com% A"),
			wantErr: "upstream unavailable: example.com/m@v1.0.0: proxy redirected .info from https to plain http: refused",
			wantLogs: "refused redirect from https://proxy.example.com/example.com/m/@v/v1.0.0.info" +
				" to http://proxy.example.com/example.com/m/@v/v1.0.0.info: https must not redirect to plain http",
		},
		{
			name:    "https to http on another host, credentials and query masked",
			proxy:   "https://proxy.example.com",
			route:   guardtest.RedirectTo("https://proxy.example.com", "http://"+guardtest.SecretToken+"@cdn.example.com"),
			hits:    guardtest.ChainHits(info, "https://proxy.example.com% A"),
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
					return "http://cdn.example.com" + u.Path + "?X-Signature=" + guardtest.SecretToken
				}
				return ""
			},
			hits:     guardtest.ChainHits(info, "https://proxy.example.com% A", "https://cdn.example.com%"),
			wantErr:  "upstream unavailable: example.com/m@v1.0.0: proxy redirected .info from https to plain http: refused",
			wantLogs: "to http://cdn.example.com/example.com/m/@v/v1.0.0.info?xxxxx: https must not redirect",
		},
		{
			name:  "another host",
			proxy: "https://proxy.example.com",
			route: guardtest.RedirectTo("https://proxy.example.com", "https://cdn.example.com"),
			hits:  guardtest.ChainHits(all, "https://proxy.example.com% A", "https://cdn.example.com%"),
		},
		{
			name:  "subdomain",
			proxy: "https://example.com",
			route: guardtest.RedirectTo("https://example.com", "https://cdn.example.com"),
			hits:  guardtest.ChainHits(all, "https://example.com% A", "https://cdn.example.com%"),
		},
		{
			name:  "another port",
			proxy: "https://proxy.example.com",
			route: guardtest.RedirectTo("https://proxy.example.com/example.com", "https://proxy.example.com:8443/mirror/example.com"),
			hits:  guardtest.ChainHits(all, "https://proxy.example.com% A", "https://proxy.example.com:8443/mirror%"),
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
			hits: guardtest.ChainHits(all, "https://proxy.example.com% A", "https://cdn.example.com%", "https://proxy.example.com/mirror%"),
		},
		{
			name:  "same host keeps the credentials",
			proxy: "https://proxy.example.com",
			route: guardtest.RedirectTo("https://proxy.example.com/example.com", "https://proxy.example.com/mirror/example.com"),
			hits:  guardtest.ChainHits(all, "https://proxy.example.com% A", "https://proxy.example.com/mirror% A"),
		},
		{
			name:     "loop",
			proxy:    "https://proxy.example.com",
			route:    loop,
			hits:     guardtest.ChainHits(slices.Repeat(info, 10), "https://proxy.example.com% A"),
			wantErr:  "upstream unavailable: example.com/m@v1.0.0: proxy redirected .info more than 10 times",
			wantLogs: "stopped after 10 redirects, at https://proxy.example.com/example.com/m/@v/v1.0.0.info",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lab := guardtest.NewLab(t, p, tt.route)
			var buf guardtest.Logs
			u := newTestUpstream(t, Config{
				Proxy:  guardtest.WithUserinfo(tt.proxy, guardtest.SecretUser+":"+guardtest.SecretPass),
				Client: lab.Client,
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
				guardtest.CheckNoSecret(t, "Fetch", err, logs)
				if !strings.Contains(logs, tt.wantLogs) {
					t.Errorf("log does not show %q:\n%s", tt.wantLogs, logs)
				}
			}
			if hits := lab.TakeHits(); !slices.Equal(hits, tt.hits) {
				t.Errorf("requests (URL, Authorization):\n\t%s\nwant\n\t%s", strings.Join(hits, "\n\t"), strings.Join(tt.hits, "\n\t"))
			}
		})
	}
}

// TestUpstreamRedirectKeepsClientPolicy checks that a configured client's
// own CheckRedirect still has its say after the upstream's checks.
func TestUpstreamRedirectKeepsClientPolicy(t *testing.T) {
	lab := guardtest.NewLab(t, http.NotFoundHandler(), guardtest.RedirectTo("https://proxy.example.com", "https://cdn.example.com"))
	client := *lab.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u := newTestUpstream(t, Config{Proxy: "https://proxy.example.com", Client: &client})
	_, err := u.Fetch(t.Context(), "example.com/m", "v1.0.0")
	if want := "upstream unavailable: example.com/m@v1.0.0: proxy answered 302 Found for .info"; err == nil || err.Error() != want {
		t.Errorf("Fetch with a client that follows no redirect = %v, want %q", err, want)
	}
	if hits := lab.TakeHits(); len(hits) != 1 {
		t.Errorf("requests %q, want only the first", hits)
	}
}
