package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sumdb/sumdb/store/storetest"
	"github.com/sumdb/sumdb/tlog"
)

var (
	_ storetest.IndexStore = (*Postgres)(nil)
	_ storetest.IndexStore = (*SQLite)(nil)
)

func TestPostgresIndex(t *testing.T) {
	t.Parallel()
	storetest.RunIndex(t, func(t *testing.T) storetest.IndexStore { return openPostgres(t) })
}

func TestSQLiteIndex(t *testing.T) {
	t.Parallel()
	storetest.RunIndex(t, func(t *testing.T) storetest.IndexStore { return openSQLite(t) })
}

// TestIndexAppendOnly checks that the database itself refuses what the
// methods never do: an indexed record or a head time changed or removed.
func TestIndexAppendOnly(t *testing.T) {
	t.Parallel()
	const forbidden = "is forbidden: the log is append-only"
	common := []string{
		`UPDATE record_index SET path = 'example.com/other'`,
		`DELETE FROM record_index`,
		`UPDATE head_times SET committed_at = 1`,
		`DELETE FROM head_times`,
	}
	fill := func(t *testing.T, s storetest.IndexStore) {
		t.Helper()
		if err := s.IndexRecords(t.Context(), []tlog.Record{{ID: 0, Path: "example.com/a", Version: "v1.0.0"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutHeadTime(t.Context(), 1, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p := openPostgres(t)
		fill(t, p)
		for _, q := range append(common, `TRUNCATE record_index`, `TRUNCATE head_times`) {
			if _, err := p.pool.Exec(t.Context(), q); err == nil || !strings.Contains(err.Error(), forbidden) {
				t.Errorf("%s: error = %v, want %q", q, err, forbidden)
			}
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s := openSQLite(t)
		fill(t, s)
		for _, q := range append(common, `REPLACE INTO record_index SELECT * FROM record_index`, `REPLACE INTO head_times SELECT * FROM head_times`) {
			if _, err := s.db.ExecContext(t.Context(), q); err == nil || !strings.Contains(err.Error(), forbidden) {
				t.Errorf("%s: error = %v, want %q", q, err, forbidden)
			}
		}
	})
}

// TestIndexPlans checks that both databases answer a search by path or
// prefix from the index on (path, id), not by reading the whole table.
func TestIndexPlans(t *testing.T) {
	t.Parallel()
	fill := func(t *testing.T, s storetest.IndexStore) {
		t.Helper()
		for start := 0; start < 5000; start += 1000 {
			recs := make([]tlog.Record, 1000)
			for i := range recs {
				id := int64(start + i)
				recs[i] = tlog.Record{ID: id, Path: fmt.Sprintf("example.com/o%d/m%d", id%500, id), Version: "v1.0.0"}
			}
			if err := s.IndexRecords(t.Context(), recs); err != nil {
				t.Fatal(err)
			}
		}
	}
	searches := func(t *testing.T) []search {
		t.Helper()
		var list []search
		for _, exact := range []bool{true, false} {
			q, err := searchQuery("example.com/o7/", exact, -1, 100)
			if err != nil {
				t.Fatal(err)
			}
			list = append(list, q)
		}
		return list
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p := openPostgres(t)
		fill(t, p)
		if _, err := p.pool.Exec(t.Context(), `ANALYZE record_index`); err != nil {
			t.Fatal(err)
		}
		for _, q := range searches(t) {
			rows, err := p.pool.Query(t.Context(), "EXPLAIN "+q.query, q.args...)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			t.Logf("EXPLAIN %s:\n%s", q.query, text)
			if !strings.Contains(text, "record_index_path") || strings.Contains(text, "Seq Scan on record_index") {
				t.Errorf("EXPLAIN %s = \n%s\nwant a scan of index record_index_path", q.query, text)
			}
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s := openSQLite(t)
		fill(t, s)
		for _, q := range searches(t) {
			rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q.query, q.args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			text := strings.Join(plan, "\n")
			t.Logf("EXPLAIN QUERY PLAN %s:\n%s", q.query, text)
			if !strings.Contains(text, "INDEX record_index_path (path") {
				t.Errorf("EXPLAIN QUERY PLAN %s = \n%s\nwant a search of index record_index_path by path", q.query, text)
			}
		}
	})
}
