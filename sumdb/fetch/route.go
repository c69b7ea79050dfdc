package fetch

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/mod/module"

	"github.com/sumdb/sumdb/internal/modver"
)

// A Fetcher fetches module versions and hashes them into checksum database
// records, as (*Upstream).Fetch does: its Fetch returns the record text,
// the two go.sum lines of path@version, or an error wrapping ErrInvalid,
// ErrNotFound, ErrForbidden, ErrRetryLater or ErrUpstream whose message
// may be shown to the user and names no secret. Implementations are safe
// for concurrent use and bound each fetch in time and size.
type Fetcher interface {
	Fetch(ctx context.Context, path, version string) ([]byte, error)
}

var (
	_ Fetcher = (*Upstream)(nil)
	_ Fetcher = (*GoCommand)(nil)
	_ Fetcher = (*Route)(nil)
)

// IsPrivate reports whether the module path matches patterns, a
// comma-separated list of glob patterns in the syntax of GOPRIVATE (see
// module.MatchPrefixPatterns): a pattern matches the path or any of its
// prefixes made of whole elements.
//
// Unlike the go command, it ignores case: a code host may serve
// example.com/Org/Repo as example.com/org/repo, and a path that differs
// from a private one in case alone must not reach a public service. Being
// more private than asked only keeps such a path from the public log.
func IsPrivate(patterns, path string) bool {
	return patterns != "" && (module.MatchPrefixPatterns(patterns, path) ||
		module.MatchPrefixPatterns(strings.ToLower(patterns), strings.ToLower(path)))
}

// A Route sends each fetch to one of two fetchers by the module path:
// paths matching Private to PrivateFetcher, all others to PublicFetcher,
// so that a private path never reaches a public upstream. A nil fetcher
// serves nothing: its side's fetches fail with ErrNotFound. A Route is
// safe for concurrent use if its fetchers are; its fields must not change
// while it is in use.
type Route struct {
	// Private is a comma-separated list of glob patterns of private module
	// paths, in the syntax of GOPRIVATE.
	Private string

	PrivateFetcher Fetcher // fetches private paths
	PublicFetcher  Fetcher // fetches all other paths
}

// Fetch fetches path@version from the fetcher of its side, after checking
// that it names a possible module version (an error wrapping ErrInvalid
// otherwise, and no fetcher is asked).
func (r *Route) Fetch(ctx context.Context, path, version string) ([]byte, error) {
	if err := modver.Check(path, version); err != nil {
		return nil, err
	}
	if IsPrivate(r.Private, path) {
		if r.PrivateFetcher == nil {
			return nil, fmt.Errorf("%w: %s@%s: the path is private (it matches the server's private patterns) and the server has no upstream for private modules; its operator must configure one", ErrNotFound, path, version)
		}
		return r.PrivateFetcher.Fetch(ctx, path, version)
	}
	if r.PublicFetcher == nil {
		return nil, fmt.Errorf("%w: %s@%s: the server logs only private modules, and this path matches none of its private patterns", ErrNotFound, path, version)
	}
	return r.PublicFetcher.Fetch(ctx, path, version)
}
