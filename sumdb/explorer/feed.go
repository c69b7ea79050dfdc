package explorer

import (
	"context"
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sumdb/sumdb/tlog"
)

// FeedSize is the number of entries of a feed: the newest versions.
const FeedSize = 50

// An Atom feed (RFC 4287).
type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Author  atomPerson  `xml:"author"`
	Links   []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Type string `xml:"type,attr,omitempty"`
	Href string `xml:"href,attr"`
}

type atomEntry struct {
	ID      string     `xml:"id"`
	Title   string     `xml:"title"`
	Updated string     `xml:"updated"`
	Links   []atomLink `xml:"link"`
}

// serveFeed answers /feed?module=<path or prefix>[&exact=1]: an Atom feed
// of the newest versions logged under the prefix (or of the module),
// newest first.
func (e *Explorer) serveFeed(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query, exact := q.Get("module"), q.Get("exact") == "1"
	if err := checkQuery(query, exact); err != nil {
		e.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	es, err := e.newest(r.Context(), query, exact, FeedSize)
	if err != nil {
		e.storeFailed(w, r, fmt.Errorf("feed of %q: %w", query, err))
		return
	}
	base := e.base
	if base == "" {
		base = "http://" + r.Host
		if r.TLS != nil {
			base = "https://" + r.Host
		}
	}
	what := "modules under " + query
	if exact {
		what = "module " + query
	}
	f := atomFeed{
		ID:      uuidURN(fmt.Sprintf("feed %s %t %s", e.vkey, exact, query)),
		Title:   fmt.Sprintf("%s: new versions of %s", e.name, what),
		Updated: time.Unix(0, 0).UTC().Format(time.RFC3339), // nothing logged under the prefix yet
		Author:  atomPerson{Name: e.name},
		Links: []atomLink{
			{Rel: "self", Type: "application/atom+xml", Href: base + feedURL(query, exact)},
			{Rel: "alternate", Type: "text/html", Href: base + searchURL(query, exact)},
		},
		Entries: []atomEntry{},
	}
	// A record of unknown time (logged before the store kept head times)
	// is dated by the newest known time among the entries, else by now.
	known := time.Now()
	for _, en := range es {
		if !en.Time.IsZero() {
			known = en.Time
			break
		}
	}
	for i, en := range es {
		t := en.Time
		if t.IsZero() {
			t = known
		}
		updated := t.UTC().Format(time.RFC3339)
		if i == 0 {
			f.Updated = updated
		}
		f.Entries = append(f.Entries, atomEntry{
			ID:      uuidURN(fmt.Sprintf("record %s %s@%s", e.vkey, en.Path, en.Version)),
			Title:   en.Path + " " + en.Version,
			Updated: updated,
			Links:   []atomLink{{Rel: "alternate", Type: "text/html", Href: base + recordURL(en.ID)}},
		})
	}
	body, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		e.fail(w, r, http.StatusInternalServerError, "internal error", fmt.Errorf("encode feed: %w", err))
		return
	}
	body = append([]byte(xml.Header), append(body, '\n')...)
	h := w.Header()
	h.Set("Content-Type", "application/atom+xml; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// searchURL returns the URL of the search page of a query.
func searchURL(query string, exact bool) string {
	q := url.Values{"q": {query}}
	if exact {
		q.Set("exact", "1")
	}
	return "/search?" + q.Encode()
}

// newest returns the n newest records of a search, newest first.
func (e *Explorer) newest(ctx context.Context, query string, exact bool, n int) ([]tlog.IndexEntry, error) {
	return e.index.NewestRecords(ctx, query, exact, n)
}

// uuidURN returns a name-based (version 5, SHA-1) UUID URN of name in the
// URL namespace (RFC 9562, section 5.5): a stable id for a feed or an entry
// that does not change with the explorer's URL.
func uuidURN(name string) string {
	ns := [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
