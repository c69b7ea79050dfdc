package store

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/sumdb/sumdb/tlog"
)

// Bounds of the state table (migration 0003_state.sql): a name is short
// text, a value at most 1 MiB (a signed tree head is a few hundred bytes, the
// evidence of a fork a few KiB).
const (
	maxStateName  = 200
	maxStateValue = 1 << 20
)

// The queries of ReadState and SwapState, the same text for both stores.
// Each swap is one statement, which changes the row only if it still holds
// the old value: two processes swapping from the same value cannot both
// succeed (under PostgreSQL's READ COMMITTED, the second UPDATE waits for
// the first and then finds the value changed; SQLite runs one writer at a
// time).
const (
	readStateQuery   = `SELECT value FROM state WHERE name = $1`
	insertStateQuery = `INSERT INTO state (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`
	updateStateQuery = `UPDATE state SET value = $3 WHERE name = $1 AND value = $2`
	deleteStateQuery = `DELETE FROM state WHERE name = $1 AND value = $2`
)

// checkStateArgs returns an error if name or a value (nil for unset) is
// outside the bounds of the state table.
func checkStateArgs(name string, values ...[]byte) error {
	if name == "" || len(name) > maxStateName || !utf8.ValidString(name) {
		return fmt.Errorf("state name %q: want 1 to %d bytes of UTF-8", name, maxStateName)
	}
	for _, v := range values {
		if v != nil && (len(v) == 0 || len(v) > maxStateValue) {
			return fmt.Errorf("state %s: value of %d bytes, want 1 to %d (nil for unset)", name, len(v), maxStateValue)
		}
	}
	return nil
}

// stateRow returns the value of state name from the row of readStateQuery
// that scan reads, or nil if there is none; noRows is the driver's error
// for no row.
func stateRow(name string, scan func(dest ...any) error, noRows error) ([]byte, error) {
	var value []byte
	err := scan(&value)
	if errors.Is(err, noRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", name, err)
	}
	return value, nil
}

// swapState sets state name from old to new (nil: unset) with exec, which
// runs a statement and returns the rows it changed, and read, which returns
// the value of name or nil. Its errors wrap tlog.ErrConflict when name does
// not hold old.
func swapState(name string, old, new []byte, exec func(query string, args ...any) (int64, error), read func() ([]byte, error)) error {
	if err := checkStateArgs(name, old, new); err != nil {
		return fmt.Errorf("swap %w", err)
	}
	var n int64
	var err error
	switch {
	case old == nil && new == nil:
		// Nothing to write: the swap succeeds if name is unset.
		var cur []byte
		if cur, err = read(); cur == nil && err == nil {
			n = 1
		}
	case old == nil:
		n, err = exec(insertStateQuery, name, new)
	case new == nil:
		n, err = exec(deleteStateQuery, name, old)
	default:
		n, err = exec(updateStateQuery, name, old, new)
	}
	if err != nil {
		return fmt.Errorf("swap state %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("swap state %s: it no longer holds the value it was read with: %w", name, tlog.ErrConflict)
	}
	return nil
}
