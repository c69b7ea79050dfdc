package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

func TestPgUnavailable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{&pgconn.PgError{Code: "57P02"}, true},
		{&pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "08001"}, true},
		{&pgconn.PgError{Code: "53300"}, true},
		{&pgconn.PgError{Code: "57014"}, true},
		{&pgconn.PgError{Code: "23505"}, false}, // unique_violation
		{&pgconn.PgError{Code: "23000"}, false}, // the append-only triggers
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined_table
		{&pgconn.PgError{Code: "28P01"}, false}, // invalid_password: not going to pass
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("x: %w", pgconn.ErrConnClosed), true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("query: %w", context.Canceled), false}, // the caller left
		{pgx.ErrNoRows, false},
		{errors.New("some other error"), false},
	} {
		if got := pgUnavailable(tt.err); got != tt.want {
			t.Errorf("pgUnavailable(%#v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// codedError is an error with a SQLite result code, as the driver's.
type codedError int

func (e codedError) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e codedError) Code() int     { return int(e) }

func TestSQLiteUnavailable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{codedError(5), true},        // SQLITE_BUSY
		{codedError(5 | 2<<8), true}, // SQLITE_BUSY_SNAPSHOT
		{codedError(10), true},       // SQLITE_IOERR
		{codedError(10 | 4<<8), true},
		{codedError(13), true}, // SQLITE_FULL
		{codedError(14), true}, // SQLITE_CANTOPEN
		{codedError(19), false},
		{codedError(19 | 8<<8), false}, // SQLITE_CONSTRAINT_TRIGGER
		{fmt.Errorf("x: %w", codedError(1)), false},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{sql.ErrNoRows, false},
	} {
		if got := sqliteUnavailable(tt.err); got != tt.want {
			t.Errorf("sqliteUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// callAll calls every read method of s and Append, and returns their errors by name.
func callAll(ctx context.Context, s tlog.Store) map[string]error {
	errs := make(map[string]error)
	_, errs["ReadHead"] = s.ReadHead(ctx)
	_, errs["Lookup"] = s.Lookup(ctx, "github.com/bench0/module", "v1.0.0")
	_, errs["ReadRecords"] = s.ReadRecords(ctx, 0, 5)
	_, errs["ReadTile"] = s.ReadTile(ctx, 0, 0)
	_, errs["ReadHeads"] = s.ReadHeads(ctx, 0, 100)
	return errs
}

// TestPostgresOutage stops the PostgreSQL server under an open store: every
// method fails at once with tlog.ErrUnavailable; when the server is back,
// the store works again by itself, with what it had stored.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t)
	ctx := t.Context()
	p, err := OpenPostgres(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	g := newBatcher()
	for range 3 {
		if err := p.Append(ctx, g.next(10)); err != nil {
			t.Fatal(err)
		}
	}

	c.Stop()
	for round := range 2 { // the first round finds the pool's old connections dead
		start := time.Now()
		errs := callAll(ctx, p)
		errs["Append"] = p.Append(ctx, g.next(10))
		g.size -= 10
		for name, err := range errs {
			if !errors.Is(err, tlog.ErrUnavailable) {
				t.Errorf("round %d: %s with the server stopped = %v, want ErrUnavailable", round, name, err)
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("round %d: calls with the server stopped took %v", round, d)
		}
	}
	t.Logf("with the server stopped: %v", callAll(ctx, p)["ReadHead"])

	c.Start()
	// The pool replaces dead connections itself: no reopen.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := p.ReadHead(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ReadHead 30s after the server restarted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, err := range callAll(ctx, p) {
		if err != nil {
			t.Errorf("%s after the server restarted: %v", name, err)
		}
	}
	if err := p.Append(ctx, g.next(10)); err != nil {
		t.Fatalf("Append after the server restarted: %v", err)
	}
	h, err := p.ReadHead(ctx)
	if err != nil || h.Size != 40 {
		t.Fatalf("ReadHead after the outage = size %d, %v; want 40", h.Size, err)
	}
	recs, err := p.ReadRecords(ctx, 0, 100)
	if err != nil || len(recs) != 40 {
		t.Fatalf("ReadRecords after the outage = %d records, %v; want 40", len(recs), err)
	}
}

// TestPostgresDeadline checks that a statement cut short by its context's
// deadline is reported as ErrUnavailable, and a canceled one is not.
func TestPostgresDeadline(t *testing.T) {
	t.Parallel()
	p := openPostgres(t)
	appendSome(t, p)
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	for name, err := range callAll(ctx, p) {
		if !errors.Is(err, tlog.ErrUnavailable) {
			t.Errorf("%s past its deadline = %v, want ErrUnavailable", name, err)
		}
	}
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	for name, err := range callAll(ctx, p) {
		if err == nil || errors.Is(err, tlog.ErrUnavailable) {
			t.Errorf("%s canceled = %v, want an error other than ErrUnavailable", name, err)
		}
	}
}

// TestSQLiteLocked holds the write lock of an embedded store from another
// connection, as another process would: an Append fails with
// ErrUnavailable after the lock wait, or when its deadline comes first.
func TestSQLiteLocked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sumdb.db")
	s, err := openSQLiteBusy(ctx, path, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := newBatcher()
	if err := s.Append(ctx, g.next(10)); err != nil {
		t.Fatal(err)
	}

	s2, err := OpenSQLite(ctx, path) // with the default lock wait
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()

	other, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	start := time.Now()
	err = s.Append(ctx, g.next(10))
	if !errors.Is(err, tlog.ErrUnavailable) {
		t.Errorf("Append while another connection holds the lock = %v, want ErrUnavailable", err)
	}
	t.Logf("after %v: %v", time.Since(start), err)

	// The default lock wait, cut short by the caller's deadline.
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = s2.Append(dctx, g.next(10))
	if !errors.Is(err, tlog.ErrUnavailable) {
		t.Errorf("Append with a deadline while another connection holds the lock = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Append with a deadline of 300ms returned after %v", d)
	}

	// Reads go on under WAL.
	if _, err := s.ReadHead(ctx); err != nil {
		t.Errorf("ReadHead while another connection holds the write lock: %v", err)
	}
	tx.Rollback()
	g.size -= 20
	if err := s.Append(ctx, g.next(10)); err != nil {
		t.Errorf("Append after the lock was released: %v", err)
	}
}
