//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockSurvivesRemovedFile: an operator (or a cleaner of stale lock
// files) removes sumdb.lock while a serve holds the data directory. A
// second process on the same data directory must still be refused, as in
// use: two processes would each keep published-head.
func TestLockSurvivesRemovedFile(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := os.Remove(filepath.Join(dir, lockFileName)); err != nil {
		t.Fatal(err)
	}
	second, err := lockDataDir(dir)
	if err == nil {
		second.Close()
		t.Fatalf("a second lock of %s, held by the first, succeeded once %s was removed", dir, lockFileName)
	}
	if !strings.Contains(err.Error(), "is in use") {
		t.Fatalf("lockDataDir(%s) held by another, %s removed = %v, want a refusal saying the directory is in use", dir, lockFileName, err)
	}
}
