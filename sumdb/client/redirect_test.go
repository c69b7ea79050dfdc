package client

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/guard/guardtest"
)

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
	userinfo := guardtest.SecretUser + ":" + guardtest.SecretPass

	tests := []struct {
		name    string
		cfg     Config // GOSUMDB's key and Client are filled in
		route   func(u *url.URL) string
		hits    []string
		wantErr string // contained in the error; "" for success
	}{
		{
			name:  "https to http",
			cfg:   Config{GOSUMDB: "https://" + userinfo + "@db.example.com/db"},
			route: guardtest.RedirectTo("https://db.example.com", "http://db.example.com"),
			// Not retried: the server would answer the same.
			hits: []string{"https://db.example.com/db/latest " + guardtest.LabAuth},
			wantErr: "upstream unavailable: GET https://xxxxx@db.example.com/db/latest: refused redirect from https://db.example.com/db/latest" +
				" to http://db.example.com/db/latest: https must not redirect to plain http",
		},
		{
			name:  "proxy redirects to http when asked whether it serves the database",
			cfg:   Config{GOPROXY: "https://" + userinfo + "@proxy.example.com"},
			route: guardtest.RedirectTo("https://proxy.example.com", "http://proxy.example.com"),
			hits:  []string{"https://proxy.example.com/sumdb/sumdb.test/supported " + guardtest.LabAuth},
			wantErr: "ask proxy whether it serves checksum database sumdb.test: upstream unavailable: GET https://xxxxx@proxy.example.com/sumdb/sumdb.test/supported:" +
				" refused redirect from https://proxy.example.com/sumdb/sumdb.test/supported to http://proxy.example.com/sumdb/sumdb.test/supported",
		},
		{
			name:  "another host",
			cfg:   Config{GOSUMDB: "https://" + userinfo + "@db.example.com/db"},
			route: guardtest.RedirectTo("https://db.example.com", "https://cdn.example.com"),
			hits:  []string{"https://db.example.com/db/latest " + guardtest.LabAuth, "https://cdn.example.com/db/latest"},
		},
		{
			name:  "proxy redirects to a subdomain",
			cfg:   Config{GOPROXY: "https://" + userinfo + "@example.com"},
			route: guardtest.RedirectTo("https://example.com", "https://cdn.example.com"),
			hits: []string{
				"https://example.com/sumdb/sumdb.test/supported " + guardtest.LabAuth, "https://cdn.example.com/sumdb/sumdb.test/supported",
				"https://example.com/sumdb/sumdb.test/latest " + guardtest.LabAuth, "https://cdn.example.com/sumdb/sumdb.test/latest",
			},
		},
		{
			name:    "loop",
			cfg:     Config{GOSUMDB: "https://" + userinfo + "@db.example.com/db"},
			route:   func(u *url.URL) string { return u.String() },
			hits:    slices.Repeat([]string{"https://db.example.com/db/latest " + guardtest.LabAuth}, 10),
			wantErr: "upstream unavailable: GET https://xxxxx@db.example.com/db/latest: stopped after 10 redirects, at https://db.example.com/db/latest",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lab := guardtest.NewLab(t, db, tt.route)
			cfg := tt.cfg
			cfg.GOSUMDB = strings.TrimSpace(vkey + " " + cfg.GOSUMDB)
			cfg.Client = lab.Client
			var buf guardtest.Logs
			cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
			r, err := Open(t.Context(), cfg)
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
					t.Errorf("Open and Get(latest) = %v, want an error containing %q", err, tt.wantErr)
				}
				guardtest.CheckNoSecret(t, "Open and Get(latest)", err, buf.String())
			}
			if hits := lab.TakeHits(); !slices.Equal(hits, tt.hits) {
				t.Errorf("requests (URL, Authorization):\n\t%s\nwant\n\t%s", strings.Join(hits, "\n\t"), strings.Join(tt.hits, "\n\t"))
			}
		})
	}
}
