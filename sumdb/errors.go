// Package sumdb is the checksum database: it answers the go command's lookups
// by finding a module version in the log or, the first time, by fetching it
// from the upstream module proxy, hashing it and appending it; and it serves
// the signed tree head and the tiles that prove every answer.
package sumdb

import "errors"

// ErrNotFound marks an error meaning the module version does not exist, or
// cannot be a log entry (invalid zip, too large). Such a lookup is answered
// with 404 and nothing is logged. Errors wrap it with the reason:
//
//	fmt.Errorf("%w: %s@%s: unknown revision", ErrNotFound, path, version)
var ErrNotFound = errors.New("not found")

// ErrUpstream marks an error of the upstream module proxy itself (5xx,
// unreachable, timeout): the lookup is answered 502 or 504 and may be retried.
var ErrUpstream = errors.New("upstream unavailable")
