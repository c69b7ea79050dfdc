package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// TestMkdirAllSyncsParents checks that each directory MkdirAll creates is
// made durable: its parent is synced once it exists, from the top down.
func TestMkdirAllSyncsParents(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "a", "b", "c")
	var synced []string
	err := mkdirAll(dir, 0o700, func(d string) error {
		synced = append(synced, d)
		return SyncDir(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if !slices.Equal(synced, want) {
		t.Errorf("mkdirAll(%s) synced %q, want the parents of the directories it created, %q", dir, synced, want)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("mkdirAll did not create %s: %v", dir, err)
	}

	// An existing directory: nothing to create, nothing to sync.
	synced = nil
	if err := mkdirAll(dir, 0o700, func(d string) error { synced = append(synced, d); return nil }); err != nil || synced != nil {
		t.Errorf("mkdirAll(existing) = %v, synced %q; want nil, nothing", err, synced)
	}

	// A failed sync fails the call: the directory may not survive a crash.
	failed := errors.New("injected")
	if err := mkdirAll(filepath.Join(root, "d"), 0o700, func(string) error { return failed }); !errors.Is(err, failed) {
		t.Errorf("mkdirAll with a failing sync = %v, want the sync's error", err)
	}

	// A file in the way.
	file := filepath.Join(root, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(file, "x"), 0o700); err == nil {
		t.Error("MkdirAll under a file succeeded")
	}
}

// TestSyncDir checks that SyncDir syncs a directory, and reports a
// directory it cannot open rather than pass over it.
func TestSyncDir(t *testing.T) {
	t.Parallel()
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir(directory) = %v", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir(missing directory) = %v, want an error", err)
	}
}
