package store

import (
	"testing"

	"github.com/sumdb/sumdb/store/storetest"
)

var (
	_ storetest.StateStore = (*Postgres)(nil)
	_ storetest.StateStore = (*SQLite)(nil)
)

func TestPostgresState(t *testing.T) {
	t.Parallel()
	storetest.RunState(t, func(t *testing.T) storetest.StateStore { return openPostgres(t) })
}

func TestSQLiteState(t *testing.T) {
	t.Parallel()
	storetest.RunState(t, func(t *testing.T) storetest.StateStore { return openSQLite(t) })
}
