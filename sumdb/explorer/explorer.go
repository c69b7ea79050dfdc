// Package explorer is the web explorer of a checksum database: pages that
// show what the log holds (its newest head, its recent records, every
// logged version of a module or of the modules under a path prefix, one
// record with its go.sum lines and an inclusion proof), each with a JSON
// twin, and an Atom feed of the new versions under a prefix, for module
// owners who watch their modules with the feed reader they already use.
//
// The pages are rendered on the server (html/template) and need no
// JavaScript. The explorer serves only the paths IsExplorerPath reports:
// every path of the checksum database protocol stays the server's.
package explorer

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/guard"
	"github.com/sumdb/sumdb/tlog"
)

// An Index finds the records of the log by module path and by recency, as
// the stores of package store do. It is safe for concurrent use; its errors
// wrapping tlog.ErrUnavailable mean "try again later". It may return fewer
// records than limit asks (a cap of its own), and may lag the log: the
// explorer reads a record that it does not have yet from the log.
type Index interface {
	// SearchRecords returns up to limit records, in increasing id, with ids
	// greater than afterID (-1 for the first page), of module path prefix
	// (exact: of that path only; else of every path starting with prefix).
	SearchRecords(ctx context.Context, prefix string, exact bool, afterID int64, limit int) ([]tlog.IndexEntry, error)
	// RecentRecords returns up to limit records, in decreasing id, with ids
	// less than beforeID (all if beforeID <= 0).
	RecentRecords(ctx context.Context, beforeID int64, limit int) ([]tlog.IndexEntry, error)
	// NewestRecords returns up to limit records of module path prefix (as
	// SearchRecords), in decreasing id: the newest first.
	NewestRecords(ctx context.Context, prefix string, exact bool, limit int) ([]tlog.IndexEntry, error)
}

// A search of a prefix that matches too many records fails with an error
// wrapping tlog.ErrTooBroad (package store's MaxPrefixMatches, 10000): the
// explorer answers 400 with tooBroadMessage.
const tooBroadMessage = "more than 10000 records under this prefix: give a longer one"

// Bounds of the requests served at once.
const (
	// DefaultMaxConcurrent is the default of Config.MaxConcurrent.
	DefaultMaxConcurrent = 8
	// queueWait is how long a request waits for one of the others to end
	// before it is answered 503.
	queueWait = time.Second
)

// A Config configures an Explorer.
type Config struct {
	// Log is the log to show. Required.
	Log *tlog.Log
	// Index finds its records. Required.
	Index Index
	// Name is the log's name, as in its verifier key. Default: the name
	// of Log's verifier.
	Name string
	// VKey is the log's verifier key, as in GOSUMDB, shown on the home
	// page. Required; it must be the key of Log's verifier.
	VKey string
	// Latest returns the signed note that the server's /latest serves,
	// with the witnesses' cosignatures if any, or nil while the log is
	// empty. Default: the note of Log's head.
	Latest func(ctx context.Context) ([]byte, error)
	// Logger receives the errors of requests. Default: discard.
	Logger *slog.Logger
	// BaseURL is the explorer's public URL (scheme and host, no path),
	// for the absolute links of the feed. Default: the scheme and Host of
	// each request.
	BaseURL string
	// Timeout bounds the store and index queries of one request. Default
	// 10s.
	Timeout time.Duration
	// MaxConcurrent bounds the requests served at once, so that the
	// explorer never holds all the store's connections, which the
	// protocol needs; a request beyond waits at most a second, then is
	// answered 503 with Retry-After. Default DefaultMaxConcurrent.
	MaxConcurrent int
}

// An Explorer is the http.Handler of the explorer's pages. It is safe for
// concurrent use.
type Explorer struct {
	log     *tlog.Log
	index   Index
	name    string
	vkey    string
	latest  func(ctx context.Context) ([]byte, error)
	logger  *slog.Logger
	base    string // "" or "scheme://host"
	timeout time.Duration
	pages   *template.Template
	slots   chan struct{} // a token for each request being served
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// New returns the explorer that cfg describes.
func New(cfg Config) (*Explorer, error) {
	if cfg.Log == nil {
		return nil, errors.New("explorer: no log: set Config.Log")
	}
	if cfg.Index == nil {
		return nil, errors.New("explorer: no index: set Config.Index")
	}
	v := cfg.Log.Verifier()
	vkey, err := note.NewVerifier(cfg.VKey)
	if err != nil {
		return nil, fmt.Errorf("explorer: verifier key %q: %w; set Config.VKey to the log's verifier key", clip(cfg.VKey, 200), err)
	}
	if vkey.Name() != v.Name() || vkey.KeyHash() != v.KeyHash() {
		return nil, fmt.Errorf("explorer: verifier key %s+%08x is not the log's key %s+%08x; set Config.VKey to the log's key", vkey.Name(), vkey.KeyHash(), v.Name(), v.KeyHash())
	}
	e := &Explorer{
		log:     cfg.Log,
		index:   cfg.Index,
		name:    cfg.Name,
		vkey:    cfg.VKey,
		latest:  cfg.Latest,
		logger:  cfg.Logger,
		timeout: cfg.Timeout,
	}
	if e.name == "" {
		e.name = v.Name()
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.timeout == 0 {
		e.timeout = 10 * time.Second
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("explorer: MaxConcurrent %d is negative; set Config.MaxConcurrent to 0 for the default", cfg.MaxConcurrent)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	e.slots = make(chan struct{}, cfg.MaxConcurrent)
	if e.timeout < 0 {
		return nil, fmt.Errorf("explorer: timeout %v is negative; set Config.Timeout to 0 for the default", e.timeout)
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("explorer: base URL %q is not http(s)://host[:port] without user, path or query; fix Config.BaseURL", clip(guard.RedactURL(cfg.BaseURL), 200))
		}
		e.base = u.Scheme + "://" + u.Host
	}
	e.pages, err = template.New("").Funcs(template.FuncMap{"timefmt": timefmt}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("explorer: parse templates: %w", err)
	}
	return e, nil
}

// IsExplorerPath reports whether the explorer serves URL path p: "/",
// "/search", "/feed", "/record/..." and "/static/...". No path of the
// checksum database protocol is one of them.
func IsExplorerPath(p string) bool {
	switch p {
	case "/", "/search", "/feed":
		return true
	}
	return strings.HasPrefix(p, "/record/") || strings.HasPrefix(p, "/static/")
}

// ServeHTTP serves the explorer's pages, the paths IsExplorerPath reports.
func (e *Explorer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	// No script, no frame, no outside resource: the pages need none.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		e.fail(w, r, http.StatusMethodNotAllowed, "method not allowed: use GET or HEAD", nil)
		return
	}
	wait := time.NewTimer(queueWait)
	select {
	case e.slots <- struct{}{}:
		wait.Stop()
		defer func() { <-e.slots }()
	case <-wait.C:
		h.Set("Retry-After", "5")
		e.fail(w, r, http.StatusServiceUnavailable, "the explorer is busy; try again in a few seconds", nil)
		return
	case <-r.Context().Done():
		wait.Stop()
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.timeout)
	defer cancel()
	r = r.WithContext(ctx)
	p := r.URL.Path
	switch {
	case p == "/":
		e.serveHome(w, r)
	case p == "/search":
		e.serveSearch(w, r)
	case p == "/feed":
		e.serveFeed(w, r)
	case p == "/static/style.css":
		h.Set("Content-Type", "text/css; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=3600")
		w.Write(styleCSS)
	case strings.HasPrefix(p, "/record/"):
		e.serveRecord(w, r, strings.TrimPrefix(p, "/record/"))
	default:
		e.fail(w, r, http.StatusNotFound, "not found: the explorer serves /, /search, /record/<id> and /feed", nil)
	}
}

// wantsJSON reports whether r asks for a page's JSON twin: ?format=json,
// or an Accept header that names application/json and not text/html.
func wantsJSON(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// A failure is the JSON twin of an error page.
type failure struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// fail answers with an error page (or its JSON twin) saying msg, and logs
// err, which stays out of the answer.
func (e *Explorer) fail(w http.ResponseWriter, r *http.Request, code int, msg string, err error) {
	attrs := []any{"method", r.Method, "path", clip(r.URL.Path, 200), "status", code}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if code >= 500 {
		e.logger.ErrorContext(r.Context(), "explorer request failed", attrs...)
	} else {
		e.logger.InfoContext(r.Context(), "explorer request rejected", attrs...)
	}
	e.render(w, r, code, "error.html", errorPage{page: e.page("Error"), Status: code, Message: msg}, failure{Status: code, Error: msg})
}

// storeFailed answers 503 when the store or the index failed or timed out,
// 400 when a prefix matches too many records, and 500 for other errors.
func (e *Explorer) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, tlog.ErrTooBroad) {
		e.fail(w, r, http.StatusBadRequest, tooBroadMessage, err)
		return
	}
	if errors.Is(err, tlog.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		w.Header().Set("Retry-After", "5")
		e.fail(w, r, http.StatusServiceUnavailable, "the log cannot be read now; try again in a few seconds", err)
		return
	}
	e.fail(w, r, http.StatusInternalServerError, "internal error", err)
}

// render writes the page named tmpl with data, or v as JSON if the request
// asks for the JSON twin. Pages change as the log grows: no-cache.
func (e *Explorer) render(w http.ResponseWriter, r *http.Request, code int, tmpl string, data, v any) {
	h := w.Header()
	h.Set("Vary", "Accept")
	h.Set("Cache-Control", "no-cache")
	var body strings.Builder
	if wantsJSON(r) {
		h.Set("Content-Type", "application/json; charset=utf-8")
		if err := encodeJSON(&body, v); err != nil {
			e.logger.ErrorContext(r.Context(), "explorer: encode JSON", "path", clip(r.URL.Path, 200), "err", err)
			code = http.StatusInternalServerError
			body.Reset()
			body.WriteString(`{"status":500,"error":"internal error"}` + "\n")
		}
	} else {
		h.Set("Content-Type", "text/html; charset=utf-8")
		if err := e.pages.ExecuteTemplate(&body, tmpl, data); err != nil {
			e.logger.ErrorContext(r.Context(), "explorer: render page", "page", tmpl, "err", err)
			code = http.StatusInternalServerError
			body.Reset()
			body.WriteString("internal error\n")
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
	}
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		io.WriteString(w, body.String())
	}
}

// clip returns s with every byte that is not printable ASCII replaced by
// '?', cut to at most n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}
