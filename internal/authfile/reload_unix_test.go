//go:build unix

package authfile

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNotRegularFile checks that an auth file that is no regular file is
// refused, at start and at a reload, and never read: a FIFO's read would
// block every request.
func TestNotRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "users")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := New(Config{File: fifo})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("New(FIFO) = %v, want an error saying it is not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("New(FIFO) blocked for 5s")
	}
}
