package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sumdb/sumdb/internal/durable"
)

// lockFileName is the lock file in the data directory.
const lockFileName = "sumdb.lock"

// errLocked is returned by lockFile when another process holds the lock.
var errLocked = errors.New("locked by another process")

// A dataDirLock holds a data directory for one process.
type dataDirLock struct {
	f *os.File // nil where locks are not supported
}

// lockDataDir takes the data directory dir for this process until the
// lock is closed or the process ends, however it ends: one process at a
// time keeps published-head, and the embedded store, there. Two would each
// record the heads they serve with counters of their own, and one could
// rename a new published-head over the file the other writes in place,
// leaving that one to record heads in a file no longer there. The lock is
// flock(2) on <dir>/sumdb.lock, which the kernel releases when the process
// dies, so a SIGKILL leaves no stale lock; the file holds the process's id,
// for the message of the next one.
func lockDataDir(dir string) (*dataDirLock, error) {
	file := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		pid := readLockPID(f)
		f.Close()
		if errors.Is(err, errLocked) {
			running := "another sumdb is running there"
			if pid > 0 {
				running = fmt.Sprintf("another sumdb (pid %d) is running there", pid)
			}
			return nil, fmt.Errorf("data directory %s is in use: %s; stop it, or give this one another --data-dir", dir, running)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	// The id is for messages only: a failure to record it is no reason
	// not to run.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataDirLock{f: f}, nil
}

// holdDataDir creates the data directory of cfg if needed and locks it
// (lockDataDir), for a command that writes there: serve and import.
func holdDataDir(cfg *ServeConfig) (*dataDirLock, error) {
	if err := durable.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return lockDataDir(cfg.DataDir)
}

// readLockPID returns the process id recorded in a lock file, or 0.
func readLockPID(f *os.File) int {
	b := make([]byte, 32)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Close releases the lock.
func (l *dataDirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.f.Close() // closing the last descriptor releases the flock
}
