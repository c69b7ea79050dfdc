package mirror

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/sumdb"
	"github.com/sumdb/sumdb/sumdb/client"
)

// Sources of answers, the values of the source label.
const (
	sourceStore    = "store"    // the store alone
	sourceUpstream = "upstream" // the upstream, verified
	sourceStale    = "stale"    // the store, the upstream having failed
)

// Cache-Control values, as sumdb.Server's.
const (
	cacheImmutable = "public, max-age=31536000, immutable" // tiles: their paths name their content
	cacheLookup    = "public, max-age=5"                   // a record and the head of the moment
	cacheLatest    = "no-cache"
	cacheNone      = "no-store" // errors
)

// ServeHTTP serves the checksum database protocol for the mirrored
// database; r.URL.Path is relative to its /sumdb/<name> prefix:
//
//	/supported                      200: the mirror serves the database
//	/latest                         the newest verified head
//	/lookup/<module>@<version>      a verified record and the newest verified head
//	/tile/8/<L>/<K>[.p/<W>]         verified hash tiles
//	/tile/8/data/<K>[.p/<W>]        verified data tiles
func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		write(w, http.StatusMethodNotAllowed, cacheNone, "method not allowed: use GET or HEAD")
		return
	}
	p := r.URL.Path
	switch {
	case p == "/supported":
		write(w, http.StatusOK, cacheNone, "ok")
	case p == "/latest":
		m.serveLatest(w, r)
	case strings.HasPrefix(p, "/lookup/"):
		m.serveLookup(w, r, strings.TrimPrefix(p, "/lookup/"))
	case strings.HasPrefix(p, "/tile/"):
		m.serveTile(w, r, strings.TrimPrefix(p, "/"))
	default:
		write(w, http.StatusNotFound, cacheNone, "not found: a checksum database serves /latest, /lookup/<module>@<version> and /tile/8/...")
	}
}

// latestWait is how long /latest waits for the upstream's head when the
// mirror has a verified one to answer with: an upstream that stalls delays
// the answer that long, not its timeout, while the refresh goes on.
const latestWait = time.Second

func (m *Mirror) serveLatest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if m.newest().note != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, latestWait)
		defer cancel()
	}
	head, asked, err := m.refresh(ctx)
	source := sourceStore
	switch {
	case err != nil:
		source = sourceStale
	case asked:
		source = sourceUpstream
	}
	if head.note == nil {
		m.fail(w, r, err)
		return
	}
	m.metrics.request("latest", source)
	ok(w, "text/plain; charset=utf-8", cacheLatest, head.note)
}

func (m *Mirror) serveLookup(w http.ResponseWriter, r *http.Request, esc string) {
	path, version, err := sumdb.ParseLookup(esc)
	if err != nil {
		write(w, http.StatusBadRequest, cacheNone, err.Error())
		return
	}
	id, text, head, source, err := m.lookup(r.Context(), path, version, esc)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	rec, err := xtlog.FormatRecord(id, text)
	if err != nil {
		// Checked before it was stored: the store returned another text.
		m.logger.ErrorContext(r.Context(), "stored record is malformed", "db", m.name, "module", path+"@"+version, "err", err)
		write(w, http.StatusInternalServerError, cacheNone, "internal error")
		return
	}
	m.metrics.request("lookup", source)
	ok(w, "text/plain; charset=utf-8", cacheLookup, append(rec, head.note...))
}

func (m *Mirror) serveTile(w http.ResponseWriter, r *http.Request, path string) {
	t, err := sumdb.ParseTilePath(path)
	if err != nil {
		write(w, http.StatusBadRequest, cacheNone, err.Error())
		return
	}
	endpoint, ctype := "tile", "application/octet-stream"
	if t.L == -1 {
		endpoint, ctype = "data_tile", "text/plain; charset=utf-8"
	}
	data, source, err := m.tile(r.Context(), t)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	m.metrics.request(endpoint, source)
	ok(w, ctype, cacheImmutable, data)
}

// fail answers a request that failed with err (nil: no head at all).
func (m *Mirror) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, client.ErrNotFound):
		// The upstream's reason, which names no address.
		write(w, http.StatusNotFound, cacheNone, err.Error())
	case errors.Is(err, errBeyond):
		write(w, http.StatusNotFound, cacheNone, "tile not found: beyond the verified tree")
	case errors.Is(err, ErrRefused):
		// Logged with the reason when refused.
		write(w, http.StatusBadGateway, cacheNone, "upstream error: the checksum database "+m.name+" answered data that failed verification; see the mirror's log")
	default:
		// The error may name the upstream's address: logged, not shown.
		m.logger.InfoContext(r.Context(), "mirror request failed", "db", m.name, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "10")
		write(w, http.StatusServiceUnavailable, cacheNone, "service unavailable: the checksum database "+m.name+" cannot be reached and the mirror does not hold the answer; retry later")
	}
}

// ok writes a successful answer.
func ok(w http.ResponseWriter, contentType, cacheControl string, body []byte) {
	answer(w, http.StatusOK, contentType, cacheControl, body)
}

// write answers with one short line of printable text, which the go
// command shows its user.
func write(w http.ResponseWriter, code int, cacheControl, msg string) {
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, msg[:min(len(msg), 400)])
	answer(w, code, "text/plain; charset=utf-8", cacheControl, []byte(msg+"\n"))
}

// answer writes an answer with its headers.
func answer(w http.ResponseWriter, code int, contentType, cacheControl string, body []byte) {
	for k, v := range map[string]string{
		"Content-Type":           contentType,
		"Cache-Control":          cacheControl,
		"X-Content-Type-Options": "nosniff",
		"Content-Length":         strconv.Itoa(len(body)),
	} {
		w.Header().Set(k, v)
	}
	w.WriteHeader(code)
	w.Write(body)
}

// NewHandler returns the handler of a server's own log and its mirrors.
// It routes /sumdb/<name>/... by the longest name that matches (names may
// contain '/'): to own, for ownName, with the /sumdb/<name> prefix removed
// (its /supported answered 200 here); to the mirror of that name; and
// answers 404 for any other name, so that the go command moves on to its
// next proxy, without a request to any upstream. Every other path goes to
// own unchanged. An empty ownName routes no /sumdb/ path to own. The names
// must be distinct: NewHandler panics on a name given twice.
func NewHandler(own http.Handler, ownName string, mirrors ...*Mirror) http.Handler {
	routes := make(map[string]http.Handler)
	if ownName != "" {
		routes[ownName] = ownRoute{own}
	}
	for _, m := range mirrors {
		if _, dup := routes[m.Name()]; dup {
			panic("mirror.NewHandler: checksum database " + m.Name() + " given twice")
		}
		routes[m.Name()] = m
	}
	return &router{own: own, routes: routes}
}

// A router is the handler of NewHandler.
type router struct {
	own    http.Handler
	routes map[string]http.Handler // by database name
}

func (h *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/sumdb/")
	if !ok {
		h.own.ServeHTTP(w, r)
		return
	}
	// The longest name first: each prefix of rest ending before a '/'.
	for i := len(rest); i > 0; i = strings.LastIndexByte(rest[:i], '/') {
		if route, ok := h.routes[rest[:i]]; ok {
			route.ServeHTTP(w, withPath(r, rest[i:]))
			return
		}
	}
	write(w, http.StatusNotFound, cacheNone, "not found: this server does not serve that checksum database")
}

// withPath returns a shallow copy of r for the URL path p, as
// http.StripPrefix makes.
func withPath(r *http.Request, p string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path = p
	r2.URL.RawPath = ""
	return r2
}

// An ownRoute serves the server's own log under its /sumdb/<name> prefix.
type ownRoute struct{ own http.Handler }

func (o ownRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/supported" {
		write(w, http.StatusOK, cacheNone, "ok")
		return
	}
	o.own.ServeHTTP(w, r)
}
