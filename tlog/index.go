package tlog

import (
	"errors"
	"time"
)

// An IndexEntry is one record of the log as the index of records by module
// path holds it (package store's SearchRecords and RecentRecords), with
// when it was logged.
type IndexEntry struct {
	ID      int64  // position in the log, from 0
	Path    string // module path, unescaped
	Version string // module version
	// Time is when the record was logged: when the first head that
	// contains it was first seen by an indexer, which is within a poll
	// interval of its commit. It is the zero Time if unknown (records
	// logged before the index existed, or while no indexer ran).
	Time time.Time
}

// ErrTooBroad is returned by a search of the index for a module path
// prefix that matches more records than the index reads for one search:
// the caller asks for a longer prefix.
var ErrTooBroad = errors.New("too many records under the prefix")
