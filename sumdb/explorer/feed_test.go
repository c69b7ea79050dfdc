package explorer

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sumdb/sumdb/tlog"
)

func TestFeed(t *testing.T) {
	paths := append(modules("org", 70), "example.com/other/a@v1.0.0", "example.com/org/ma@v1.1.0")
	ev := newEnv(t, Config{BaseURL: "https://sum.example.com"}, paths)

	resp, body := ev.get(t, "/feed?module=example.com/org/", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/atom+xml; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /feed = %s, %q, %q: %s", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), body)
	}
	var f atomFeed
	if err := xml.Unmarshal([]byte(body), &f); err != nil {
		t.Fatalf("GET /feed: %v\n%s", err, body)
	}
	if f.XMLName.Space != "http://www.w3.org/2005/Atom" || !strings.HasPrefix(f.ID, "urn:uuid:") || f.Author.Name == "" || len(f.Entries) != FeedSize {
		t.Fatalf("GET /feed = namespace %q, id %q, author %q, %d entries; want Atom, a urn:uuid id, an author, %d entries", f.XMLName.Space, f.ID, f.Author.Name, len(f.Entries), FeedSize)
	}
	if f.Links[0].Rel != "self" || f.Links[0].Href != "https://sum.example.com/feed?module=example.com%2Forg%2F" {
		t.Errorf("GET /feed: self link %+v, want the feed's absolute URL", f.Links[0])
	}
	// Newest first: record 71, then 69 down (70 is another prefix's).
	wantIDs := append([]int64{71}, 69)
	for id := int64(68); len(wantIDs) < FeedSize; id-- {
		wantIDs = append(wantIDs, id)
	}
	if f.Updated != baseTime.Add(71*time.Minute).Format(time.RFC3339) {
		t.Errorf("GET /feed: updated %s, want the newest entry's time", f.Updated)
	}
	ids := map[string]bool{}
	for i, en := range f.Entries {
		id := wantIDs[i]
		path, version, _ := strings.Cut(paths[id], "@")
		want := atomEntry{
			ID:      en.ID,
			Title:   path + " " + version,
			Updated: baseTime.Add(time.Duration(id) * time.Minute).Format(time.RFC3339),
			Links:   []atomLink{{Rel: "alternate", Type: "text/html", Href: fmt.Sprintf("https://sum.example.com/record/%d", id)}},
		}
		if !strings.HasPrefix(en.ID, "urn:uuid:") || ids[en.ID] || !equalEntry(en, want) {
			t.Errorf("GET /feed: entry %d = %+v, want %+v with a new urn:uuid id", i, en, want)
		}
		ids[en.ID] = true
	}

	// An exact feed; a feed of nothing yet.
	_, body = ev.get(t, "/feed?module=example.com/org/ma&exact=1", "")
	f = atomFeed{}
	if err := xml.Unmarshal([]byte(body), &f); err != nil || len(f.Entries) != 2 || f.Entries[0].Title != "example.com/org/ma v1.1.0" {
		t.Errorf("GET /feed?module=example.com/org/ma&exact=1 = %v, %+v; want v1.1.0 then v1.0.0", err, f.Entries)
	}
	_, body = ev.get(t, "/feed?module=example.com/none/", "")
	f = atomFeed{}
	if err := xml.Unmarshal([]byte(body), &f); err != nil || len(f.Entries) != 0 || f.Updated != "1970-01-01T00:00:00Z" {
		t.Errorf("GET /feed?module=example.com/none/ = %v, %d entries, updated %s; want none", err, len(f.Entries), f.Updated)
	}
}

func equalEntry(a, b atomEntry) bool {
	return a.ID == b.ID && a.Title == b.Title && a.Updated == b.Updated && slices.Equal(a.Links, b.Links)
}

// TestNewest checks the bisection of newest against the newest entries
// found by reading them all, for prefixes of many records, spread over
// many ids.
func TestNewest(t *testing.T) {
	idx := &memIndex{}
	var all []tlog.IndexEntry
	for id := range int64(20000) {
		var path string
		switch {
		case id%7 == 0:
			path = "example.com/seven/m"
		case id%2 == 0:
			path = fmt.Sprintf("example.com/even/m%d", id%13)
		default:
			path = "example.com/odd/m"
		}
		all = append(all, tlog.IndexEntry{ID: id, Path: path, Version: fmt.Sprintf("v1.0.%d", id)})
	}
	idx.add(all...)
	ev := newEnv(t, Config{Index: idx}, modules("org", 1))
	for _, tt := range []struct {
		prefix string
		exact  bool
	}{
		{"example.com/seven/m", true}, {"example.com/even/", false}, {"example.com/odd/", false}, {"example.com/", false}, {"example.com/even/m3", true}, {"example.com/none", false},
	} {
		t.Run(tt.prefix, func(t *testing.T) {
			var want []int64
			for _, e := range slices.Backward(all) {
				if len(want) < FeedSize && (e.Path == tt.prefix || !tt.exact && strings.HasPrefix(e.Path, tt.prefix)) {
					want = append(want, e.ID)
				}
			}
			idx.queries = 0
			es, err := ev.ex.newest(t.Context(), tt.prefix, tt.exact, FeedSize)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, e := range es {
				got = append(got, e.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("newest(%q, %v) = %v, want %v", tt.prefix, tt.exact, got, want)
			}
			if idx.queries > 20 {
				t.Errorf("newest(%q, %v) took %d queries, want at most 20", tt.prefix, tt.exact, idx.queries)
			}
		})
	}
}

func TestUUIDURN(t *testing.T) {
	// uuid.uuid5(uuid.NAMESPACE_URL, name) of Python's uuid module.
	name := "record sumdb.test+1234 example.com/a@v1.0.0"
	if got, want := uuidURN(name), "urn:uuid:a5f44839-9f8d-509b-bc1f-a70a90869a9c"; got != want {
		t.Errorf("uuidURN(%q) = %s, want %s", name, got, want)
	}
}
