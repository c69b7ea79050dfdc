package store

import (
	"strings"
	"testing"

	"github.com/sumdb/sumdb/store/storetest"
)

var (
	_ storetest.CosignatureStore = (*Postgres)(nil)
	_ storetest.CosignatureStore = (*SQLite)(nil)
)

func TestPostgresCosignature(t *testing.T) {
	t.Parallel()
	storetest.RunCosignature(t, func(t *testing.T) storetest.CosignatureStore { return openPostgres(t) })
}

func TestSQLiteCosignature(t *testing.T) {
	t.Parallel()
	storetest.RunCosignature(t, func(t *testing.T) storetest.CosignatureStore { return openSQLite(t) })
}

// TestCosignaturesAppendOnly checks that the database itself refuses what
// the methods never do: a stored cosignature changed or removed.
func TestCosignaturesAppendOnly(t *testing.T) {
	t.Parallel()
	const forbidden = "is forbidden: the log is append-only"
	common := []string{
		`UPDATE cosignatures SET size = size + 1`,
		`UPDATE cosignatures SET line = line`,
		`DELETE FROM cosignatures`,
	}
	put := func(t *testing.T, s storetest.CosignatureStore) {
		t.Helper()
		if err := s.PutCosignature(t.Context(), 3, "w", []byte("— w AAAAAAAAAAAAAAAA\n")); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p := openPostgres(t)
		put(t, p)
		for _, q := range append(common, `TRUNCATE cosignatures`) {
			if _, err := p.pool.Exec(t.Context(), q); err == nil || !strings.Contains(err.Error(), forbidden) {
				t.Errorf("%s: error = %v, want %q", q, err, forbidden)
			}
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s := openSQLite(t)
		put(t, s)
		for _, q := range append(common, `REPLACE INTO cosignatures SELECT * FROM cosignatures`) {
			if _, err := s.db.ExecContext(t.Context(), q); err == nil || !strings.Contains(err.Error(), forbidden) {
				t.Errorf("%s: error = %v, want %q", q, err, forbidden)
			}
		}
	})
}
