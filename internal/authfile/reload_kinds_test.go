//go:build unix

package authfile

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadFileReplaced checks the reload when the auth file is replaced
// by something that is not a valid file (removed, a directory, a file over
// the size limit), then re-created: the last valid entries stay in force,
// each bad state is logged once however many checks see it, and the
// re-created file is loaded.
func TestReloadFileReplaced(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, file string)
	}{
		{"removed", func(t *testing.T, file string) {}},
		{"directory", func(t *testing.T, file string) {
			if err := os.Mkdir(file, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"too large", func(t *testing.T, file string) {
			if err := os.WriteFile(file, []byte(strings.Repeat("# a comment\n", maxFileSize/10)), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, htpasswd(t, "alice", "wonderland")+"\n", Config{})
			if err := os.Remove(e.file); err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, e.file)
			for range 3 {
				e.tick()
				if w := e.get("/latest", "192.0.2.1", basic("alice", "wonderland")); w.Code != 200 {
					t.Errorf("GET /latest with the file %s = %d, want 200 (the last valid file in force)", tc.name, w.Code)
				}
			}
			if n := strings.Count(e.logs.String(), "auth file not reloaded"); n != 1 {
				t.Errorf("file %s, checked 3 times: logged %d times, want once:\n%s", tc.name, n, e.logs)
			}
			if err := os.RemoveAll(e.file); err != nil {
				t.Fatal(err)
			}
			e.write(htpasswd(t, "alice", "new-password") + "\n")
			e.tick()
			if w := e.get("/latest", "192.0.2.2", basic("alice", "new-password")); w.Code != 200 {
				t.Errorf("GET /latest with the re-created file's password = %d, want 200", w.Code)
			}
			if w := e.get("/latest", "192.0.2.3", basic("alice", "wonderland")); w.Code != 401 {
				t.Errorf("GET /latest with the old password after the re-creation = %d, want 401", w.Code)
			}
		})
	}
}

// TestReloadFIFO checks that an auth file replaced by a named pipe (a
// mistake, or a path under /dev/fd) does not hang the requests: opening a
// FIFO for reading blocks until a writer comes, and the reload holds the
// lock every request needs.
func TestReloadFIFO(t *testing.T) {
	e := newEnv(t, htpasswd(t, "alice", "wonderland")+"\n", Config{})
	if err := os.Remove(e.file); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(e.file, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	e.tick()
	done := make(chan int, 1)
	go func() { done <- e.get("/latest", "192.0.2.1", basic("alice", "wonderland")).Code }()
	select {
	case code := <-done:
		if code != 200 {
			t.Errorf("GET /latest with the file a FIFO = %d, want 200 (the last valid file in force)", code)
		}
		return
	case <-time.After(3 * time.Second):
		t.Errorf("GET /latest with the auth file replaced by a FIFO still waiting after 3s; want an answer (the last valid file in force, the FIFO refused as not a regular file)")
	}
	// Free the blocked reader.
	if w, err := os.OpenFile(e.file, os.O_WRONLY, 0); err == nil {
		w.Close()
	}
	<-done
}
