package main

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/store/storetest"
)

// TestExplorerSQLite and TestExplorerPostgres run the explorer through
// sumdb serve, on each store, under --auth-file: the modules the go command
// logged are on the home page, found by a prefix search (in JSON), in the
// prefix's Atom feed and on their record pages; the protocol paths are the
// server's; and without credentials the explorer asks for them.
func TestExplorerSQLite(t *testing.T) {
	t.Parallel()
	testExplorer(t, []string{"--data-dir", t.TempDir()})
}

func TestExplorerPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the explorer test on PostgreSQL")
	}
	t.Parallel()
	testExplorer(t, []string{"--data-dir", t.TempDir(), "--database-url", storetest.PostgresURL(t)})
}

func testExplorer(t *testing.T, storeArgs []string) {
	px := newProxies(t)
	mods := []string{"example.com/org/alpha", "example.com/org/beta", "example.com/other/gamma"}
	for _, m := range mods {
		px.add(t, pkg(m, "v1.0.0", "module "+m+"\n"))
	}
	authFile := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(authFile, []byte(bcryptLine(t, "alice", "wonderland")), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := startSumdb(t, slices.Concat(storeArgs, []string{"--listen", "127.0.0.1:0", "--upstream", px.upstreamURL,
		"--private", "off", "--auth-file", authFile})...)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	srv.client = &http.Client{Transport: basicAuth{"alice", "wonderland", http.DefaultTransport}}
	for _, m := range mods {
		if _, err := srv.lookup(m, "v1.0.0"); err != nil {
			t.Fatal(err)
		}
	}

	// The indexer follows the log within a fraction of a second.
	var search struct {
		Records []struct {
			ID      int64  `json:"id"`
			Path    string `json:"path"`
			Version string `json:"version"`
			Hash    string `json:"hash"`
			Time    string `json:"time"`
		} `json:"records"`
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := srv.get("/search?q=example.com/org/&format=json")
		_, home := srv.get("/")
		if code == http.StatusOK && json.Unmarshal(body, &search) == nil && len(search.Records) == 2 && strings.Contains(string(home), mods[2]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /search?q=example.com/org/ (JSON) = %d %s after 15s, want the two records under the prefix", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, r := range search.Records {
		if r.Path != mods[i] || r.Version != "v1.0.0" || !strings.HasPrefix(r.Hash, "h1:") || r.Time == "" {
			t.Errorf("search record %d = %+v, want %s v1.0.0 with its hash and time", i, r, mods[i])
		}
	}
	if code, body := srv.get("/"); code != http.StatusOK || !strings.Contains(string(body), "example.com/other/gamma") || !strings.Contains(strings.ReplaceAll(string(body), "&#43;", "+"), srv.vkey) {
		t.Errorf("GET / = %d, want the home page with the log's key and its records:\n%s", code, body)
	}
	code, body := srv.get("/feed?module=example.com/org/")
	var feed struct {
		XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
		Entries []struct {
			Title string `xml:"title"`
		} `xml:"entry"`
	}
	if err := xml.Unmarshal(body, &feed); code != http.StatusOK || err != nil || len(feed.Entries) != 2 {
		t.Errorf("GET /feed?module=example.com/org/ = %d (%v), want an Atom feed of two entries:\n%s", code, err, body)
	}
	if code, body := srv.get("/record/" + itoa(search.Records[0].ID)); code != http.StatusOK || !strings.Contains(string(body), search.Records[0].Hash) {
		t.Errorf("GET /record/%d = %d, want the record's page with its hash:\n%s", search.Records[0].ID, code, body)
	}
	if code, _ := srv.get("/latest"); code != http.StatusOK {
		t.Errorf("GET /latest = %d beside the explorer, want 200", code)
	}

	// Without credentials, the explorer is as closed as the log.
	resp, err := http.Get(srv.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET / without credentials = %s, want 401 with WWW-Authenticate", resp.Status)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
