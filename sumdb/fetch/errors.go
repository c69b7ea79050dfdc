// Package fetch is the module fetcher of the checksum database: it fetches
// module versions from module proxies (the GOPROXY protocol), checks them as
// the go command would, and hashes them into the go.sum lines of a record.
//
// It is the server's upstream, and the auditor's when it rehashes a log.
package fetch

import (
	"context"
	"errors"

	"github.com/sumdb/sumdb/internal/modver"
)

// ErrNotFound marks an error meaning the module version does not exist, or
// cannot be a log entry (invalid zip, too large). The server answers such a
// lookup with 404 and logs nothing. Errors wrap it with the reason:
//
//	fmt.Errorf("%w: %s@%s: unknown revision", ErrNotFound, path, version)
var ErrNotFound = errors.New("not found")

// ErrUpstream marks an error of the upstream module proxy itself (5xx,
// unreachable, timeout): the server answers the lookup 502 or 504, and it
// may be retried.
var ErrUpstream = errors.New("upstream unavailable")

// ErrForbidden marks an error meaning the source of the module version
// refused the server's credentials, or the server has none for it: the
// server answers the lookup 403 with the error's message, which must name
// no secret.
var ErrForbidden = errors.New("forbidden")

// ErrRetryLater marks an error meaning the version cannot be logged now
// but may be later, such as when the public checksum database it must be
// cross-checked with cannot be reached: the server answers the lookup 503
// with Retry-After and the error's message, which must name no secret.
var ErrRetryLater = errors.New("retry later")

// ErrInvalid marks an error meaning path@version names no possible module
// version (a malformed path, a non-canonical or mismatched version): Fetch
// makes no request for it, and the server answers 400.
var ErrInvalid = modver.ErrInvalid

// Results of fetches, the values of the "result" attribute of the fetch
// log line and of the "result" label of the server's
// sumdb_upstream_fetches_total.
const (
	ResultOK            = "ok"
	ResultNotFound      = "not_found"      // 404 or 410, or nothing that can be logged
	ResultInvalid       = "invalid"        // not a possible module version; no request made
	ResultUpstreamError = "upstream_error" // 5xx, other 4xx, unreachable, malformed answer
	ResultForbidden     = "forbidden"      // the source refused the server's credentials
	ResultRetryLater    = "retry_later"    // a check the version needs cannot be made now
	ResultTimeout       = "timeout"
	ResultError         = "error" // local, such as a full disk
)

// Result names the outcome of a fetch that returned err.
func Result(err error) string {
	switch {
	case err == nil:
		return ResultOK
	case errors.Is(err, ErrInvalid):
		return ResultInvalid
	case errors.Is(err, ErrRetryLater):
		return ResultRetryLater
	case errors.Is(err, ErrForbidden):
		return ResultForbidden
	case errors.Is(err, ErrNotFound):
		return ResultNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return ResultTimeout
	case errors.Is(err, ErrUpstream):
		return ResultUpstreamError
	}
	return ResultError
}
