package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sumdb/sumdb/tlog"
)

// An unavailableError is an error of a database that could not be reached:
// its message is the database error's, and it matches tlog.ErrUnavailable
// too, so that callers answer "try again later" rather than fail.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, tlog.ErrUnavailable} }

// markUnavailable marks *errp with tlog.ErrUnavailable if unavailable says
// it is one; the methods of the stores defer it on their result.
func markUnavailable(errp *error, unavailable func(error) bool) {
	if err := *errp; err != nil && !errors.Is(err, tlog.ErrUnavailable) && unavailable(err) {
		*errp = &unavailableError{err}
	}
}

// pgUnavailable reports whether err, from pgx, says that PostgreSQL could
// not be reached or answered too late, rather than that the statement
// failed: the same operation may succeed once the server is back.
func pgUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// https://www.postgresql.org/docs/current/errcodes-appendix.html
		switch code := pgErr.Code; {
		case strings.HasPrefix(code, "08"): // connection exception
			return true
		case code == "57P01", // admin_shutdown: the server is stopping
			code == "57P02", // crash_shutdown: another server process crashed
			code == "57P03", // cannot_connect_now: starting up or in recovery
			code == "57014", // query_canceled: statement_timeout
			code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		pgconn.Timeout(err) ||
		errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}

// SQLite result codes of errors that may pass (https://sqlite.org/rescode.html):
// the primary code is the low byte of an extended one.
const (
	sqliteBusy     = 5  // another process held the lock past busy_timeout
	sqliteLocked   = 6  // a conflict within the process
	sqliteNoMem    = 7  // out of memory
	sqliteIOErr    = 10 // the operating system reported an I/O error
	sqliteFull     = 13 // the disk is full
	sqliteCantOpen = 14 // the file could not be opened
)

// sqliteUnavailable reports whether err, from the SQLite driver, says that
// the database could not be used for now (locked by another process, an
// I/O error, a full disk) or that a statement ran out of time.
func sqliteUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var coded interface{ Code() int }
	if !errors.As(err, &coded) {
		return false
	}
	switch coded.Code() & 0xff {
	case sqliteBusy, sqliteLocked, sqliteNoMem, sqliteIOErr, sqliteFull, sqliteCantOpen:
		return true
	}
	return false
}
