package sumdb

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxRedirects is how many redirects one request may follow: as many as
// the go command and net/http allow.
const maxRedirects = 10

// A redirectError is a redirect that a client of this package refused to
// follow. Its URLs are shown with user information and query masked.
type redirectError struct {
	from, to  string // the last URL requested and the one redirected to
	downgrade bool   // from https to plain http; else too many redirects
}

func (e *redirectError) Error() string {
	if e.downgrade {
		return fmt.Sprintf("refused redirect from %s to %s: https must not redirect to plain http (have the server redirect to https, or give its final https URL)", e.from, e.to)
	}
	return fmt.Sprintf("stopped after %d redirects, at %s: the server redirects in a loop or too often (give its final URL)", maxRedirects, e.to)
}

// guardRedirects returns a copy of c that follows a redirect only as
// checkRedirect allows, and then as c's own CheckRedirect, if any, does.
func guardRedirects(c *http.Client) *http.Client {
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
	return &g
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
	if len(via) >= maxRedirects {
		return &redirectError{from: shownRedirect(last), to: shownRedirect(req.URL)}
	}
	for _, r := range via {
		if r.URL.Scheme == "https" && req.URL.Scheme != "https" {
			return &redirectError{from: shownRedirect(last), to: shownRedirect(req.URL), downgrade: true}
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
