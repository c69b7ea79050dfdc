//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReviewLockFileRemovedWhileHeld: an operator (or a cleaner of stale
// lock files) removes sumdb.lock while a serve holds it. A second process
// on the same data directory must still be refused: two processes would
// each keep published-head.
func TestReviewLockFileRemovedWhileHeld(t *testing.T) {
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
}
