package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is the server PostgresURL uses when the environment
// variable SUMDB_TEST_DATABASE_URL is empty.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the PostgreSQL server the tests use:
// $SUMDB_TEST_DATABASE_URL, or DefaultPostgresURL if it is unset. Its
// database is the one connections to administer the test databases use.
func ServerURL() string {
	if s := os.Getenv("SUMDB_TEST_DATABASE_URL"); s != "" {
		return s
	}
	return DefaultPostgresURL
}

// PostgresURL creates a new, empty database for the test on the PostgreSQL
// server at $SUMDB_TEST_DATABASE_URL (DefaultPostgresURL if unset), whose
// user must be allowed to create databases, and returns its URL. The database
// is dropped when the test ends, closing any connection left to it.
//
// If the server is unreachable, the test is skipped, or fails if the
// environment variable CI or SUMDB_REQUIRE_POSTGRES is set: nothing is
// skipped silently in CI.
func PostgresURL(t testing.TB) string {
	t.Helper()
	server := ServerURL()
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("storetest: SUMDB_TEST_DATABASE_URL=%q is not a postgres:// URL", server)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		msg := "storetest: PostgreSQL server at %s is unreachable: %v\n" +
			"Start one (user postgres, trust authentication on 127.0.0.1:5432), " +
			"or set SUMDB_TEST_DATABASE_URL to the URL of a server where the user may create databases."
		if os.Getenv("CI") != "" || os.Getenv("SUMDB_REQUIRE_POSTGRES") != "" {
			t.Fatalf(msg, u.Redacted(), err)
		}
		t.Skipf(msg+" (Set SUMDB_REQUIRE_POSTGRES=1 to fail instead of skipping.)", u.Redacted(), err)
	}
	defer conn.Close(ctx)

	var random [8]byte
	rand.Read(random[:])
	name := "sumdb_test_" + hex.EncodeToString(random[:])
	// The name is ours, [a-z0-9_]: no quoting needed.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("storetest: create database %s on %s: %v (the user must have CREATEDB)", name, u.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})

	db := *u
	db.Path = "/" + name
	db.RawPath = ""
	return db.String()
}
