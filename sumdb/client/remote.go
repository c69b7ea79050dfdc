// Package client is the client of a checksum database: it reaches a
// database as the go command does (at its URL, or through a module proxy
// that serves it), and verifies the signed tree heads it reads before any
// proof is computed on them. The tools that check go.sum files and audit
// logs are built on it.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/guard"
)

// ErrNotFound marks an error meaning the database has nothing at the path
// asked for (it answered 404 or 410): an unknown module version, or a tile
// beyond its tree. Errors wrap it with the server's reason.
var ErrNotFound = errors.New("not found")

// ErrUpstream marks a failure to get an answer from the database (5xx,
// another unexpected status, unreachable, timeout), after retries: the
// request may succeed later.
var ErrUpstream = errors.New("upstream unavailable")

// ErrUnauthorized marks a failure whose cause is the database's refusal of
// the credentials sent, or of their absence (it answered 401 or 403): the
// request fails the same way until the credentials change. Errors wrap it
// and ErrUpstream both.
var ErrUnauthorized = errors.New("credentials refused")

// A Remote is a checksum database reached over HTTP the way the go command
// reaches one: at the URL given with its key, or through the first module
// proxy that supports it (GOPROXY's /sumdb/<name>/ path), or else directly at
// https://<name>. Every request is bounded and retried on server errors.
type Remote struct {
	// Key is the verifier key, and Verifier its parsed form.
	Key      string
	Verifier note.Verifier
	// Base is the URL that the paths "latest", "lookup/..." and "tile/..."
	// are resolved against, without a trailing slash. Any user information
	// in it shows as "xxxxx", as in errors and logs, for Base is shown in
	// reports; the requests still authenticate with the real one.
	Base string

	base    remoteURL // Base with the real user information
	client  *guard.Client
	auth    Authenticator // nil: none
	retries int
	logger  *slog.Logger
}

// Config configures Open. The zero value of a field means its default.
type Config struct {
	// GOSUMDB names the database as the go command's GOSUMDB does:
	// "<verifier key> [URL]", or the bare name of the go command's built-in
	// checksum database, whose key the go command knows. "off" is refused.
	GOSUMDB string
	// GOPROXY is the proxy list searched for a proxy that serves the
	// database when GOSUMDB gives no URL.
	GOPROXY string
	// Client is the HTTP client. Default: one with a 30s timeout per
	// request. Whatever the client, a redirect from https to plain http is
	// refused, at most 10 redirects are followed, and the credentials of a
	// URL are sent only to its own scheme, host and port; the client's own
	// CheckRedirect, if any, is asked after that.
	Client *http.Client
	// Retries is how often a request failing with a 5xx status or a
	// network error is retried, with exponential backoff. Zero means the
	// default, 4; negative, none.
	Retries int
	// Logger receives one line per retried request. Default: discard.
	Logger *slog.Logger
	// Auth, if not nil, gives every request its credentials, as the go
	// command's GOAUTH does (see internal/goauth). They win over those of
	// the URL's user information, as in the go command; both are sent only
	// to the URL's own scheme, host and port (see Client).
	Auth Authenticator
}

// An Authenticator gives requests credentials. Its methods may be called
// concurrently.
type Authenticator interface {
	// Apply sets the credentials of req, if it has any for its URL.
	Apply(req *http.Request)
	// Refresh looks for credentials again after the server refused
	// resp.Request with 401 or 403. It reports whether Apply would now set
	// other credentials than were sent, so that the request is worth
	// repeating once; if not, err, if not nil, tells why none were found,
	// naming no secret.
	Refresh(resp *http.Response) (retry bool, err error)
}

// A remoteURL is a URL that a Remote requests.
type remoteURL struct {
	url   string        // without user information
	user  *url.Userinfo // the user information, if any (see guard.SetUserinfo)
	shown string        // url as logs and errors show it: redacted
}

// newRemoteURL returns the remoteURL for u, less a trailing slash.
func newRemoteURL(u *url.URL) remoteURL {
	c := *u
	c.User = nil
	return remoteURL{
		url:   strings.TrimSuffix(c.String(), "/"),
		user:  u.User,
		shown: strings.TrimSuffix(guard.Redacted(u), "/"),
	}
}

// join returns the remoteURL of path under e.
func (e remoteURL) join(path string) remoteURL {
	return remoteURL{url: e.url + "/" + path, user: e.user, shown: e.shown + "/" + path}
}

// maxRemoteBody bounds any response of a checksum database: a full tile is
// 8 KiB of hashes, a data tile 256 records; a lookup, one record and a note.
const maxRemoteBody = 4 << 20

// Open resolves cfg.GOSUMDB to a Remote. Finding the URL may ask the
// proxies in cfg.GOPROXY whether they serve the database.
func Open(ctx context.Context, cfg Config) (*Remote, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Retries == 0 {
		cfg.Retries = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	fields := strings.Fields(cfg.GOSUMDB)
	switch {
	case len(fields) == 0:
		return nil, errors.New("no checksum database named: set GOSUMDB or give --sumdb \"<verifier key> [URL]\"")
	case len(fields) > 2:
		// Not shown: the URL may hold a password.
		return nil, fmt.Errorf("invalid GOSUMDB: too many fields (%d; want \"<verifier key> [URL]\")", len(fields))
	case fields[0] == "off":
		return nil, errors.New("the checksum database is disabled (GOSUMDB=off): name one with --sumdb \"<verifier key> [URL]\"")
	}
	key := fields[0]
	if !strings.Contains(key, "+") {
		if key != goName() {
			return nil, fmt.Errorf("GOSUMDB=%s gives no key, and only the go command's built-in checksum database is known without one: give the full verifier key", key)
		}
		key = goKey
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("invalid checksum database key %q: %w", key, err)
	}
	r := &Remote{Key: key, Verifier: v, client: guard.NewClient(cfg.Client), auth: cfg.Auth, retries: cfg.Retries, logger: cfg.Logger}
	name := v.Name()
	if u, err := url.Parse("https://" + name); err != nil || u.Host == "" || u.Path != strings.TrimSuffix(u.Path, "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("invalid checksum database name %q: must be host[/path]", name)
	}
	if len(fields) == 2 {
		u, err := parseHTTPURL(fields[1], "checksum database URL", "in GOSUMDB")
		if err != nil {
			return nil, err
		}
		r.base = newRemoteURL(u)
		r.Base = r.base.shown
		return r, nil
	}
	base, err := r.discover(ctx, cfg.GOPROXY, name)
	if err != nil {
		return nil, err
	}
	r.base = base
	r.Base = r.base.shown
	return r, nil
}

// discover finds how to reach database name as the go command does (see
// "Proxying a checksum database" in the sumdb design, and TryProxies in
// cmd/go/internal/modfetch): the first proxy whose
// <proxy>/sumdb/<name>/supported answers 200 serves it; 404 or 410, or any
// error after a "|", moves on; "direct", "off" or the end of the list mean
// https://<name> itself, except that a list that ends after an error that
// was moved on from fails with that error. Any other answer is an error.
func (r *Remote) discover(ctx context.Context, proxies, name string) (remoteURL, error) {
	direct := remoteURL{url: "https://" + name, shown: "https://" + name}
	var failed error // the first error other than not found, moved on from after a "|"
	for n := 1; proxies != ""; n++ {
		var entry, sep string
		if i := strings.IndexAny(proxies, ",|"); i >= 0 {
			entry, sep, proxies = proxies[:i], proxies[i:i+1], proxies[i+1:]
		} else {
			entry, proxies = proxies, ""
		}
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if entry == "direct" || entry == "off" {
			return direct, nil
		}
		var base remoteURL
		u, err := parseHTTPURL(entry, "proxy URL", fmt.Sprintf("number %d of GOPROXY", n))
		if err == nil {
			base = newRemoteURL(u).join("sumdb/" + name)
			_, err = r.get(ctx, base.join("supported"), 0)
		}
		if err == nil {
			return base, nil
		}
		if errors.Is(err, ErrNotFound) {
			continue
		}
		err = fmt.Errorf("ask proxy whether it serves checksum database %s: %w", name, err)
		if sep != "|" {
			return remoteURL{}, err
		}
		if failed == nil {
			failed = err
		}
	}
	if failed != nil {
		// The go command reports a proxy's error rather than going to the
		// database directly behind the user's back.
		return remoteURL{}, failed
	}
	return direct, nil
}

// parseHTTPURL parses raw, a URL of the configuration (what it is), as an
// http or https URL with a host. Its errors name the URL as guard.ShownURL does,
// or else by position.
func parseHTTPURL(raw, what, position string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, password included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("invalid %s %s: %w", what, position, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		name := position
		if shown := guard.ShownURL(raw, u); shown != "" {
			name = strconv.Quote(shown)
		}
		return nil, fmt.Errorf("invalid %s %s: want http:// or https:// and a host", what, name)
	}
	return u, nil
}

// goKey is the verifier key of the go command's built-in checksum
// database, the one database a bare name in GOSUMDB may name. The go command
// builds it in (cmd/go/internal/modfetch), and x/mod's gosumcheck holds it
// the same way: public data, which no Go installation's sources need to be
// read for (they may be missing, and the file may move). TestGoKey compares
// it with the go command's copy where the sources are there.
const goKey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"

// goName returns the name of the go command's built-in checksum database.
func goName() string {
	name, _, _ := strings.Cut(goKey, "+")
	return name
}

// Get fetches path ("latest", "lookup/...", "tile/...") from the database.
// A 404 or 410 is an error wrapping ErrNotFound with the server's reason;
// after retries, a 5xx or network failure is an error wrapping ErrUpstream.
func (r *Remote) Get(ctx context.Context, path string) ([]byte, error) {
	return r.get(ctx, r.base.join(path), r.retries)
}

func (r *Remote) get(ctx context.Context, u remoteURL, retries int) ([]byte, error) {
	backoff := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		body, retry, err := r.getOnce(ctx, u)
		if err == nil || !retry || attempt >= retries || ctx.Err() != nil {
			return body, err
		}
		pause := backoff + time.Duration(rand.Int64N(int64(backoff)))
		r.logger.InfoContext(ctx, "retrying checksum database request", "url", u.shown, "attempt", attempt+1, "pause", pause, "err", err)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: GET %s: %w", ErrUpstream, u.shown, ctx.Err())
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// getOnce makes one request, repeated once if the server refused its
// credentials and the Authenticator found others, and says whether a
// failure is worth retrying.
func (r *Remote) getOnce(ctx context.Context, e remoteURL) (body []byte, retry bool, err error) {
	u := e.shown // for errors
	resp, retry, err := r.send(ctx, e)
	if err != nil {
		return nil, retry, err
	}
	var authErr error // why no other credentials were found
	if r.auth != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		again, aerr := r.auth.Refresh(resp)
		if again {
			resp.Body.Close()
			if resp, retry, err = r.send(ctx, e); err != nil {
				return nil, retry, err
			}
		} else {
			authErr = aerr
		}
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxRemoteBody+1))
	if err != nil {
		return nil, true, fmt.Errorf("%w: GET %s: read body: %w", ErrUpstream, u, err)
	}
	if len(body) > maxRemoteBody {
		return nil, false, fmt.Errorf("%w: GET %s: response larger than %d bytes", ErrUpstream, u, maxRemoteBody)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, false, nil
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, false, fmt.Errorf("%w: GET %s: %s; %s%w", ErrUpstream, u, refusal(body, resp.Status), credentialsHint(e.url, authErr), unauthorized{})
	case resp.StatusCode == http.StatusForbidden:
		return nil, false, fmt.Errorf("%w: GET %s: %s%w", ErrUpstream, u, reason(body, resp.Status), unauthorized{})
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, false, fmt.Errorf("%w: %s", ErrNotFound, reason(body, resp.Status))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, true, fmt.Errorf("%w: GET %s: %s", ErrUpstream, u, reason(body, resp.Status))
	default:
		return nil, false, fmt.Errorf("%w: GET %s: %s", ErrUpstream, u, reason(body, resp.Status))
	}
}

// send makes one request of e, with its credentials, and says whether a
// failure is worth retrying.
func (r *Remote) send(ctx context.Context, e remoteURL) (*http.Response, bool, error) {
	u := e.shown // for errors
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url, nil)
	if err != nil {
		return nil, false, fmt.Errorf("GET %s: %w", u, err)
	}
	if r.auth != nil {
		r.auth.Apply(req)
	}
	if req.Header.Get("Authorization") == "" {
		guard.SetUserinfo(req, e.user)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		var rerr *guard.RedirectError
		if errors.As(err, &rerr) {
			// Not retried: the server would redirect the same way. The
			// redirect alone: net/http's error adds the Location again.
			return nil, false, fmt.Errorf("%w: GET %s: %w", ErrUpstream, u, rerr)
		}
		return nil, true, fmt.Errorf("%w: GET %s: %w", ErrUpstream, u, err)
	}
	return resp, false, nil
}

// refusal returns the status of a refusal and the server's reason, if it
// gives one.
func refusal(body []byte, status string) string {
	if r := reason(body, status); r != status {
		return status + ": " + r
	}
	return status
}

// credentialsHint tells the user of a checksum database at rawURL that
// refused them for want of credentials how to give them; authErr, if not
// nil, is why none were found.
func credentialsHint(rawURL string, authErr error) string {
	var hint string
	if u, err := url.Parse(rawURL); err == nil && u.Scheme == "https" {
		hint = fmt.Sprintf("the checksum database is readable only by its users: give your credentials in .netrc (machine %s login USER password PASSWORD), or through GOAUTH", u.Host)
	} else {
		hint = "the checksum database is readable only by its users, and credentials are sent only over https: give its https URL"
	}
	if authErr != nil {
		hint += " (" + authErr.Error() + ")"
	}
	return hint
}

// reason returns the first line of a text error body if it is short and
// printable, else the HTTP status.
func reason(body []byte, status string) string {
	line, _, _ := strings.Cut(string(body), "\n")
	line = strings.TrimSpace(line)
	if line == "" || len(line) > 200 {
		return status
	}
	for _, c := range line {
		if c < 0x20 || c == 0x7f {
			return status
		}
	}
	return line
}

// unauthorized marks an error with ErrUnauthorized without adding to its
// message.
type unauthorized struct{}

func (unauthorized) Error() string        { return "" }
func (unauthorized) Is(target error) bool { return target == ErrUnauthorized }
