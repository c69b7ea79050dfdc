package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/tlog"
)

// indexSkewedRows indexes n records: the first three quarters of
// example.com/a/m<i>, the last quarter of example.com/z/m<i>, and the very
// last of example.com/small/m.
func indexSkewedRows(t *testing.T, index func([]tlog.Record) error, n int) {
	t.Helper()
	for start := 0; start < n; start += MaxIndexBatch {
		var recs []tlog.Record
		for i := start; i < min(n, start+MaxIndexBatch); i++ {
			path := fmt.Sprintf("example.com/a/m%d", i)
			if i >= 3*n/4 {
				path = fmt.Sprintf("example.com/z/m%d", i)
			}
			if i == n-1 {
				path = "example.com/small/m"
			}
			recs = append(recs, tlog.Record{ID: int64(i), Path: path, Version: "v1.0.0"})
		}
		if err := index(recs); err != nil {
			t.Fatal(err)
		}
	}
}

// rowsRead returns the rows that the scans of record_index in a Postgres
// EXPLAIN ANALYZE plan (JSON) read, summed.
func rowsRead(plan map[string]any) float64 {
	var n float64
	if rel, _ := plan["Relation Name"].(string); rel == "record_index" {
		rows, _ := plan["Actual Rows"].(float64)
		removed, _ := plan["Rows Removed by Filter"].(float64)
		loops, _ := plan["Actual Loops"].(float64)
		n += (rows + removed) * max(loops, 1)
	}
	subs, _ := plan["Plans"].([]any)
	for _, s := range subs {
		if m, ok := s.(map[string]any); ok {
			n += rowsRead(m)
		}
	}
	return n
}

// nodes returns the node types of a Postgres plan, with the index each
// scans, outermost first.
func nodes(plan map[string]any) string {
	s, _ := plan["Node Type"].(string)
	if ix, ok := plan["Index Name"].(string); ok {
		s += " on " + ix
	}
	subs, _ := plan["Plans"].([]any)
	for _, sub := range subs {
		if m, ok := sub.(map[string]any); ok {
			s += " > " + nodes(m)
		}
	}
	return s
}

// TestSearchPrefixBounded checks that a prefix search reads at most about
// MaxPrefixMatches rows, however many records the log holds, whether the
// prefix matches most of the log ("example.com/", refused), many records
// logged late, or one: the explorer's search is open to anyone, and each
// request must cost a bounded amount. The matches are read from the index
// on (path, id) alone, as the visibility map that (auto)vacuum keeps allows.
func TestSearchPrefixBounded(t *testing.T) {
	t.Parallel()
	const n, limit = 20000, 10
	p := openPostgres(t)
	ctx := t.Context()
	indexSkewedRows(t, func(recs []tlog.Record) error { return p.IndexRecords(ctx, recs) }, n)
	if _, err := p.pool.Exec(ctx, `VACUUM ANALYZE record_index`); err != nil {
		t.Fatal(err)
	}
	const bound = MaxPrefixMatches + 1 + limit // the count, or the matches and the page's rows
	for _, prefix := range []string{"example.com/", "example.com/a/", "example.com/z/", "example.com/small/"} {
		q, err := searchQuery(prefix, false, -1, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, query := range []struct {
			text string
			args []any
		}{{q.count, q.args[:q.nargs]}, {q.query, q.args}} {
			var out []byte
			if err := p.pool.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+query.text, query.args...).Scan(&out); err != nil {
				t.Fatal(err)
			}
			var plans []map[string]any
			if err := json.Unmarshal(out, &plans); err != nil {
				t.Fatal(err)
			}
			plan, _ := plans[0]["Plan"].(map[string]any)
			if got := rowsRead(plan); got > bound {
				t.Errorf("SearchRecords(%q, limit %d) over %d records reads %.0f rows of record_index (plan %s), want at most %d", prefix, limit, n, got, nodes(plan), bound)
			}
		}
	}
	for _, tt := range []struct {
		prefix string
		broad  bool
	}{{"example.com/", true}, {"example.com/a/", true}, {"example.com/z/", false}, {"example.com/small/", false}} {
		_, err := p.SearchRecords(ctx, tt.prefix, false, -1, limit)
		_, errNewest := p.NewestRecords(ctx, tt.prefix, false, limit)
		for _, err := range []error{err, errNewest} {
			if errors.Is(err, tlog.ErrTooBroad) != tt.broad || (!tt.broad && err != nil) {
				t.Errorf("SearchRecords and NewestRecords(%q) over %d records = %v, want ErrTooBroad %v", tt.prefix, n, err, tt.broad)
			}
		}
	}
}

// TestSearchPrefixPlanSQLite checks that SQLite reads a prefix's records
// through the index on path, in a subquery of at most MaxPrefixMatches
// rows (a co-routine), and sorts only those by id, never scanning the
// table.
func TestSearchPrefixPlanSQLite(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	ctx := t.Context()
	indexSkewedRows(t, func(recs []tlog.Record) error { return s.IndexRecords(ctx, recs) }, 5000)
	if _, err := s.db.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"example.com/", "example.com/z/", "example.com/small/"} {
		q, err := searchQuery(prefix, false, -1, 10)
		if err != nil {
			t.Fatal(err)
		}
		got := sqlitePlan(t, s, q)
		// Without the index on path, the rows before the first match are
		// read; with it and a sort of the whole range, every match is.
		if !strings.Contains(got, "CO-ROUTINE m; SEARCH record_index USING COVERING INDEX record_index_path") || strings.Contains(got, "SCAN record_index") {
			t.Errorf("plan of SearchRecords(%q) = %q, want a search of the index on path in a bounded subquery, and no scan of the table", prefix, got)
		}
		if !strings.Contains(q.query, fmt.Sprintf("LIMIT %d", MaxPrefixMatches)) {
			t.Errorf("SearchRecords(%q) query %q, want the matches read with LIMIT %d", prefix, q.query, MaxPrefixMatches)
		}
	}
}

// sqlitePlan returns SQLite's plan of q, its lines joined by "; ".
func sqlitePlan(t *testing.T, s *SQLite, q search) string {
	t.Helper()
	rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q.query, q.args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}
