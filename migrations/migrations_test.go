package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestList(t *testing.T) {
	for _, d := range []struct {
		name string
		list func() ([]Migration, error)
	}{
		{"postgres", func() ([]Migration, error) { return List(Postgres()) }},
		{"sqlite", func() ([]Migration, error) { return List(SQLite()) }},
	} {
		t.Run(d.name, func(t *testing.T) {
			list, err := d.list()
			if err != nil {
				t.Fatalf("List() error: %v", err)
			}
			if len(list) == 0 {
				t.Fatal("List() = no migrations, want at least 0001_init.sql")
			}
			if list[0].Name != "0001_init.sql" || list[0].Version != 1 {
				t.Errorf("List()[0] = %s version %d, want 0001_init.sql version 1", list[0].Name, list[0].Version)
			}
			for i, m := range list {
				if m.Version != i+1 {
					t.Errorf("List()[%d].Version = %d, want %d", i, m.Version, i+1)
				}
				if strings.TrimSpace(m.SQL) == "" {
					t.Errorf("List()[%d].SQL is empty", i)
				}
			}
		})
	}
}

// TestDialectsAgree checks that both dialects have the same migrations, so
// that a database of either kind at version N has the same meaning.
func TestDialectsAgree(t *testing.T) {
	pg, err := List(Postgres())
	if err != nil {
		t.Fatal(err)
	}
	lite, err := List(SQLite())
	if err != nil {
		t.Fatal(err)
	}
	if len(pg) != len(lite) {
		t.Fatalf("postgres has %d migrations, sqlite %d; want the same", len(pg), len(lite))
	}
	for i := range pg {
		if pg[i].Name != lite[i].Name {
			t.Errorf("migration %d: postgres %s, sqlite %s; want the same name", i+1, pg[i].Name, lite[i].Name)
		}
	}
}

func TestListErrors(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for _, tt := range []struct {
		name  string
		files fstest.MapFS
		want  string // substring of the error, or "" for success
	}{
		{"empty", fstest.MapFS{}, ""},
		{"ok", fstest.MapFS{"0001_a.sql": sql, "0002_b.sql": sql, "README": sql}, ""},
		{"gap", fstest.MapFS{"0001_a.sql": sql, "0003_c.sql": sql}, "want 2"},
		{"start", fstest.MapFS{"0002_a.sql": sql}, "want 1"},
		{"duplicate", fstest.MapFS{"0001_a.sql": sql, "0001_b.sql": sql}, "want 2"},
		{"zero", fstest.MapFS{"0000_a.sql": sql}, "NNNN_name.sql"},
		{"short", fstest.MapFS{"1_a.sql": sql}, "NNNN_name.sql"},
		{"noname", fstest.MapFS{"0001.sql": sql}, "NNNN_name.sql"},
		{"emptyname", fstest.MapFS{"0001_.sql": sql}, "NNNN_name.sql"},
		{"sign", fstest.MapFS{"+001_a.sql": sql}, "NNNN_name.sql"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := List(tt.files)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("List() error: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("List() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
