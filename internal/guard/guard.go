// Package guard keeps the credentials of configured URLs (a proxy's, a
// checksum database's) from leaking: its HTTP client follows only the
// redirects that cannot hand them, or the answer, to someone else, and
// masks URLs in its errors; its helpers show URLs redacted.
package guard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// MaxRedirects is how many redirects one request may follow: as many as
// the go command and net/http allow.
const MaxRedirects = 10

// A RedirectError is a redirect that a Client refused to follow. Its URLs
// are shown with user information and query masked.
type RedirectError struct {
	from, to  string // the last URL requested and the one redirected to
	Downgrade bool   // from https to plain http; else too many redirects
}

func (e *RedirectError) Error() string {
	if e.Downgrade {
		return fmt.Sprintf("refused redirect from %s to %s: https must not redirect to plain http (have the server redirect to https, or give its final https URL)", e.from, e.to)
	}
	return fmt.Sprintf("stopped after %d redirects, at %s: the server redirects in a loop or too often (give its final URL)", MaxRedirects, e.to)
}

// A Client is an http.Client that follows redirects only as checkRedirect
// allows, and whose errors show URLs as shownRedirect does. Every request
// to a configured URL goes through one: net/http's *url.Error repeats the
// URL of the last request of a chain, the Location of a redirect, masking
// only a password, so that a connection refused or a timeout on a
// pre-signed storage URL would show its token.
type Client struct {
	c *http.Client
}

// NewClient returns a client sending with a copy of c that follows a
// redirect only as checkRedirect allows, and then as c's own
// CheckRedirect, if any, does.
func NewClient(c *http.Client) *Client {
	g := *c
	own := c.CheckRedirect
	g.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkRedirect(req, via); err != nil {
			return err
		}
		if own != nil {
			return own(req, via)
		}
		return nil
	}
	return &Client{c: &g}
}

// Do sends req as http.Client.Do does; its error is masked by
// maskURLError.
func (g *Client) Do(req *http.Request) (*http.Response, error) {
	resp, err := g.c.Do(req)
	return resp, maskURLError(err)
}

// errBadLocation replaces net/http's error for a Location header that
// does not parse, which quotes the header whole.
var errBadLocation = errors.New("the server redirected to a Location that is not a valid URL (its operator must fix it)")

// maskURLError returns err, an error of http.Client.Do, with the URL of its
// *url.Error shown as shownRedirect shows it, or not at all if it does not
// parse. What callers test is kept: the wrapped error, for errors.Is and
// errors.As, and so Timeout.
func maskURLError(err error) error {
	uerr, ok := err.(*url.Error)
	if !ok {
		return err
	}
	shown := "(URL not shown: it does not parse)"
	if u, perr := url.Parse(uerr.URL); perr == nil {
		shown = shownRedirect(u)
	}
	inner := maskURLError(uerr.Err) // from a Transport that is a client itself
	// net/http has no type for this error, only its text: TestMaskURLError
	// fails if the text changes.
	if inner != nil && strings.HasPrefix(inner.Error(), "failed to parse Location header") {
		inner = errBadLocation
	}
	return &url.Error{Op: uerr.Op, URL: shown, Err: inner}
}

// checkRedirect refuses the next request req of a chain of redirects via
// if it is one too many, or if it leaves https for plain http anywhere in
// the chain: whoever is on the path of a plain http request chooses the
// answer, and sees the credentials. As the go command does, and stricter:
// it looks at the first request only.
//
// It also removes the credentials from req unless every request of the
// chain went to the scheme, host and port of the first one: net/http keeps
// them for the same host name on any port or scheme, and for its
// subdomains, none of which the credentials were given for.
func checkRedirect(req *http.Request, via []*http.Request) error {
	last := via[len(via)-1].URL
	if len(via) >= MaxRedirects {
		return &RedirectError{from: shownRedirect(last), to: shownRedirect(req.URL)}
	}
	for _, r := range via {
		if r.URL.Scheme == "https" && req.URL.Scheme != "https" {
			return &RedirectError{from: shownRedirect(last), to: shownRedirect(req.URL), Downgrade: true}
		}
	}
	first := origin(via[0].URL)
	left := origin(req.URL) != first
	for _, r := range via[1:] {
		left = left || origin(r.URL) != first
	}
	if left {
		req.Header.Del("Authorization")
	}
	return nil
}

// origin returns the scheme, host and port of u, with the scheme's default
// port if u has none.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// shownRedirect returns how an error shows u, a URL of a chain of
// redirects: with its user information and its query masked, since a
// redirect may carry a token in either (a pre-signed storage URL does), and
// without its fragment.
func shownRedirect(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("xxxxx")
	}
	if c.RawQuery != "" || c.ForceQuery {
		c.RawQuery, c.ForceQuery = "xxxxx", false
	}
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// ShownURL returns how an error may show the URL raw, parsed as u: without
// its user information if its only "@" ends that, else "" (a malformed URL
// such as "http//user:password@host" has no user information that
// url.Redacted would find).
func ShownURL(raw string, u *url.URL) string {
	if at := strings.Count(raw, "@"); at == 0 || at == 1 && u.User != nil {
		return Redacted(u)
	}
	return ""
}

// Redacted returns u with its user information, if any, masked whole: a
// user name may be a token too.
func Redacted(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = url.User("xxxxx")
	return c.String()
}

// SetUserinfo makes req authenticate with user, the user information of a
// URL (nil for none), as net/http does for a request URL that holds it.
// Requested URLs are kept without it because net/http repeats the URL in
// its errors, masking only a password: a user name may be a token too.
func SetUserinfo(req *http.Request, user *url.Userinfo) {
	if user != nil {
		password, _ := user.Password()
		req.SetBasicAuth(user.Username(), password)
	}
}

// RedactURL returns s without its user information, for messages: a user
// name may be a token too. The values of query parameters that may hold a
// secret (a PostgreSQL URL's password=, a token=) are masked as well.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	if u.User == nil && strings.Contains(s, "@") {
		// Not a URL with user information as written (https//user:pw@host,
		// host/path without a scheme): whatever comes before an '@' may
		// be a password all the same.
		return maskAt(s)
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		masked := false
		for name := range q {
			if secretParam(name) {
				q[name] = []string{"xxxxx"}
				masked = true
			}
		}
		switch {
		case err != nil:
			u.RawQuery = "xxxxx" // unparsable: show none of it
		case masked:
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// secretParam reports whether a URL query parameter of this name may hold
// a secret.
func secretParam(name string) bool {
	name = strings.ToLower(name)
	for _, s := range []string{"pass", "token", "secret", "key", "auth"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// maskAt returns s with what comes before its last '@', after a scheme
// separator if s has one before it, masked: the user information of a URL
// written so that it does not parse as one.
func maskAt(s string) string {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	return s[:start] + "xxxxx" + s[at:]
}

// RedactList redacts each URL of a GOPROXY-style list.
func RedactList(list string) string {
	var b strings.Builder
	rest := list
	for rest != "" {
		entry, sep := rest, ""
		if i := strings.IndexAny(rest, ",|"); i >= 0 {
			entry, sep, rest = rest[:i], rest[i:i+1], rest[i+1:]
		} else {
			rest = ""
		}
		if strings.Contains(entry, "://") {
			entry = RedactURL(entry)
		} else {
			entry = maskAt(entry)
		}
		b.WriteString(entry + sep)
	}
	return b.String()
}
