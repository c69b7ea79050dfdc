package explorer

import (
	"context"
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"net/http"
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
	for i, en := range es {
		updated := en.Time.UTC().Format(time.RFC3339)
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
	u := feedURL(query, exact)
	return "/search?q=" + u[len("/feed?module="):]
}

// feedScan is how many records newest asks for first, in one query: all
// of those of most modules and prefixes.
const feedScan = 1000

// newest returns the n newest records of a search, newest first. The index
// lists a search's records oldest first: newest asks for the first
// feedScan, and if there are more (the index may return fewer than asked),
// finds by bisection on the record id the id after which exactly n
// remain, in about log2(tree size) queries of n+1 records.
func (e *Explorer) newest(ctx context.Context, query string, exact bool, n int) ([]tlog.IndexEntry, error) {
	es, err := e.index.SearchRecords(ctx, query, exact, -1, feedScan)
	if err != nil || len(es) == 0 {
		return nil, err
	}
	more, err := e.index.SearchRecords(ctx, query, exact, es[len(es)-1].ID, 1)
	if err != nil {
		return nil, err
	}
	if len(more) > 0 {
		// More than n records come after lo, at most n after hi: when
		// hi = lo+1, exactly n come after hi.
		last, err := e.index.RecentRecords(ctx, 0, 1) // nothing comes after the newest record
		if err != nil {
			return nil, err
		}
		lo, hi := int64(-1), more[0].ID
		if len(last) > 0 {
			hi = max(hi, last[0].ID)
		}
		if len(es) > n {
			lo = es[len(es)-n-1].ID // n records of es and more[0] come after it
		}
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			after, err := e.index.SearchRecords(ctx, query, exact, mid, n+1)
			if err != nil {
				return nil, err
			}
			if len(after) > n {
				lo = mid
			} else {
				hi = mid
			}
		}
		if es, err = e.index.SearchRecords(ctx, query, exact, hi, n); err != nil {
			return nil, err
		}
	}
	es = es[max(0, len(es)-n):]
	out := make([]tlog.IndexEntry, len(es))
	for i, en := range es {
		out[len(es)-1-i] = en
	}
	return out, nil
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
