//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockSurvivesRemovedFile checks this: an operator (or a cleaner of stale lock
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

// TestLockReleasedOnClose checks this: while one lock holds the data directory, the
// next is refused with the id of the holder; once it is closed, the next
// takes the directory, and no file is left naming a process that is gone.
func TestLockReleasedOnClose(t *testing.T) {
	dir := t.TempDir()
	// A process killed earlier left its id behind: the next holder must
	// not be named by it.
	if err := os.WriteFile(filepath.Join(dir, lockFileName), []byte("999999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := lockDataDir(dir)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatalf("a second lock of %s, held by the first, succeeded", dir)
	}
	for _, want := range []string{dir, fmt.Sprintf("another sumdb (pid %d)", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lockDataDir(%s) held by this process = %v, want it to say %q", dir, err, want)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, lockFileName)); !os.IsNotExist(err) {
		t.Errorf("after Close, stat %s = %v, want it removed", lockFileName, err)
	}
	third, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lockDataDir(%s) after the holder closed: %v", dir, err)
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
}
