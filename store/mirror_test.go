package store

import (
	"strings"
	"testing"

	"github.com/sumdb/sumdb/store/storetest"
)

var (
	_ storetest.MirrorStore = (*Postgres)(nil)
	_ storetest.MirrorStore = (*SQLite)(nil)
)

func TestPostgresMirror(t *testing.T) {
	t.Parallel()
	storetest.RunMirror(t, func(t *testing.T) storetest.MirrorStore { return openPostgres(t) })
}

func TestSQLiteMirror(t *testing.T) {
	t.Parallel()
	storetest.RunMirror(t, func(t *testing.T) storetest.MirrorStore { return openSQLite(t) })
}

// TestMirrorImmutable checks that the database itself refuses what the
// methods never do: a mirrored tile changed other than by extension, a
// mirrored record changed, anything of the mirror removed.
func TestMirrorImmutable(t *testing.T) {
	t.Parallel()
	const (
		never   = "verified data never changes"
		extends = "unless it extends the tile"
	)
	type refusal struct{ q, want string }
	common := []refusal{
		{`UPDATE mirror_tiles SET idx = idx + 1`, extends},
		{`UPDATE mirror_tiles SET db = 'other'`, extends},
		{`DELETE FROM mirror_tiles`, never},
		{`UPDATE mirror_records SET id = id + 1`, never},
		{`UPDATE mirror_records SET text = text`, never},
		{`DELETE FROM mirror_records`, never},
	}
	put := func(t *testing.T, s storetest.MirrorStore) {
		t.Helper()
		ctx := t.Context()
		if err := s.PutMirrorTile(ctx, "sum.example.com", 0, 0, make([]byte, 64)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMirrorRecord(ctx, "sum.example.com", "example.com/m", "v1.0.0", 3, []byte("example.com/m v1.0.0 h1:x=\nexample.com/m v1.0.0/go.mod h1:y=\n")); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p := openPostgres(t)
		put(t, p)
		for _, r := range append(common,
			refusal{`TRUNCATE mirror_tiles`, never},
			refusal{`TRUNCATE mirror_records`, never},
			refusal{`UPDATE mirror_tiles SET data = substring(data FROM 33)`, extends},
			refusal{`UPDATE mirror_tiles SET data = set_byte(data, 0, 1) || data`, extends},
		) {
			if _, err := p.pool.Exec(t.Context(), r.q); err == nil || !strings.Contains(err.Error(), r.want) {
				t.Errorf("%s: error = %v, want %q", r.q, err, r.want)
			}
		}
		if _, err := p.pool.Exec(t.Context(), `UPDATE mirror_tiles SET data = data || decode(repeat('01', 32), 'hex')`); err != nil {
			t.Errorf("extending a mirrored tile: %v", err)
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s := openSQLite(t)
		put(t, s)
		for _, r := range append(common,
			refusal{`REPLACE INTO mirror_tiles SELECT db, level, idx, zeroblob(32) FROM mirror_tiles`, never},
			refusal{`REPLACE INTO mirror_records SELECT * FROM mirror_records`, never},
			refusal{`UPDATE mirror_tiles SET data = substr(data, 33)`, extends},
			refusal{`UPDATE mirror_tiles SET data = unhex('01' || hex(data))`, extends},
		) {
			if _, err := s.db.ExecContext(t.Context(), r.q); err == nil || !strings.Contains(err.Error(), r.want) {
				t.Errorf("%s: error = %v, want %q", r.q, err, r.want)
			}
		}
		if _, err := s.db.ExecContext(t.Context(), `UPDATE mirror_tiles SET data = unhex(hex(data) || hex(zeroblob(32)))`); err != nil {
			t.Errorf("extending a mirrored tile: %v", err)
		}
	})
}
