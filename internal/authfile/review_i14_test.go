package authfile

import (
	"os"
	"testing"
)

// TestReloadSameSizeAndModTime shows that a change of the auth file that
// keeps its size (a bcrypt hash replaced by another is always the same
// length) and lands within the file system's timestamp granularity of the
// version last read (a tick of the kernel's coarse clock on Linux, a
// second or two on some file systems) is never picked up: the old password
// stays valid, and the new one refused, until the file changes again.
// The test sets the modification time back to simulate that granularity.
func TestReloadSameSizeAndModTime(t *testing.T) {
	e := newEnv(t, htpasswd(t, "alice", "wonderland")+"\n", Config{})
	if w := e.get("/latest", "192.0.2.1", basic("alice", "wonderland")); w.Code != 200 {
		t.Fatalf("GET /latest with the first password = %d, want 200", w.Code)
	}
	fi, err := os.Stat(e.file)
	if err != nil {
		t.Fatal(err)
	}
	e.write(htpasswd(t, "alice", "new-password") + "\n") // in place, same inode
	if err := os.Chtimes(e.file, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fi2, err := os.Stat(e.file); err != nil || fi2.Size() != fi.Size() {
		t.Fatalf("rewritten file: %v, size %d, want the same size %d", err, fi2.Size(), fi.Size())
	}
	for range 3 {
		e.tick()
		if w := e.get("/latest", "192.0.2.2", basic("alice", "wonderland")); w.Code != 401 {
			t.Errorf("GET /latest with the old password %ds after the change = %d, want 401", e.now.Load(), w.Code)
		}
		if w := e.get("/latest", "192.0.2.3", basic("alice", "new-password")); w.Code != 200 {
			t.Errorf("GET /latest with the new password after the change = %d, want 200", w.Code)
		}
	}
}
