// Package migrations holds the SQL schema of sumdb's storage backends as
// numbered files, embedded into the binary.
//
// Each dialect has its own directory of files named NNNN_name.sql, numbered
// from 0001 without gaps. A file is applied once, in one transaction, by the
// migration runner of package store, which records its number in the
// schema_version table. Files are never edited after they are released: a
// schema change is a new file.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// files holds both dialects; it is unexported so that nobody can replace it.
//
//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the migrations of the PostgreSQL schema.
func Postgres() fs.FS { return sub("postgres") }

// SQLite returns the migrations of the SQLite schema.
func SQLite() fs.FS { return sub("sqlite") }

func sub(dir string) fs.FS {
	fsys, err := fs.Sub(files, dir)
	if err != nil {
		// fs.Sub fails only for an invalid path, and dir is a constant.
		panic(fmt.Sprintf("migrations: sub %q: %v", dir, err))
	}
	return fsys
}

// A Migration is one numbered schema change.
type Migration struct {
	Version int    // from the file name's number, 1 for 0001_init.sql
	Name    string // file name, such as "0001_init.sql"
	SQL     string // the statements, to be run in one transaction
}

// List returns the migrations in the top directory of fsys, in increasing
// version. It returns an error if a .sql file is not named NNNN_name.sql or
// if the versions are not 1, 2, ..., n.
func List(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	// fs.Glob returns names in lexical order, and the four-digit prefix
	// makes that the numeric order.
	var list []Migration
	for _, name := range names {
		v, err := parseName(name)
		if err != nil {
			return nil, err
		}
		if want := len(list) + 1; v != want {
			return nil, fmt.Errorf("list migrations: %s has version %d, want %d (versions must be 1, 2, ... without gaps)", name, v, want)
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration: %w", err)
		}
		list = append(list, Migration{Version: v, Name: name, SQL: string(data)})
	}
	return list, nil
}

// parseName returns the version of a migration file named NNNN_name.sql.
func parseName(name string) (int, error) {
	base := strings.TrimSuffix(path.Base(name), ".sql")
	num, rest, ok := strings.Cut(base, "_")
	if !ok || len(num) != 4 || rest == "" {
		return 0, fmt.Errorf("parse migration name %q: want NNNN_name.sql", name)
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 || strings.ContainsAny(num, "+-") {
		return 0, fmt.Errorf("parse migration name %q: want NNNN_name.sql with NNNN from 0001", name)
	}
	return v, nil
}
