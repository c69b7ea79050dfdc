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

// lockFileName is the file in the data directory naming the process that
// holds the directory, for the message of the next one. It is not the
// lock: removing it, as operators remove stale lock files, lets no one in.
const lockFileName = "sumdb.lock"

// errLocked is returned by lockDir when another process holds the lock.
var errLocked = errors.New("locked by another process")

// A dataDirLock holds a data directory for one process.
type dataDirLock struct {
	dir     *os.File // the data directory, flocked; nil where locks are not supported
	pidFile string   // the lock file written, or ""
}

// lockDataDir takes the data directory dir for this process until the
// lock is closed or the process ends, however it ends: one process at a
// time keeps published-head, and the embedded store, there. Two would each
// record the heads they serve with counters of their own, and one could
// rename a new published-head over the file the other writes in place,
// leaving that one to record heads in a file no longer there. The lock is
// flock(2) on the directory itself, which cannot be removed while it holds
// anything, unlike a file in it, and which the kernel releases when the
// process dies, so a SIGKILL leaves no stale lock. The holder then writes
// its id to <dir>/sumdb.lock, for the message of the next one only.
func lockDataDir(dir string) (*dataDirLock, error) {
	d, err := lockDir(dir)
	if errors.Is(err, errLocked) {
		running := "another sumdb is running there"
		if pid := readLockPID(filepath.Join(dir, lockFileName)); pid > 0 {
			running = fmt.Sprintf("another sumdb (pid %d) is running there", pid)
		}
		return nil, fmt.Errorf("data directory %s is in use: %s; stop it, or give this one another --data-dir", dir, running)
	}
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w; give a --data-dir this user can read, on a local file system", dir, err)
	}
	l := &dataDirLock{dir: d}
	if d != nil {
		l.pidFile = writeLockPID(filepath.Join(dir, lockFileName))
	}
	return l, nil
}

// holdDataDir creates the data directory of cfg if needed and locks it
// (lockDataDir), for a command that writes there: serve and import.
func holdDataDir(cfg *ServeConfig) (*dataDirLock, error) {
	if err := durable.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return lockDataDir(cfg.DataDir)
}

// writeLockPID records the id of this process in the lock file, and
// returns its name, or "" if it could not. The id is for messages only:
// a failure to record it is no reason not to run. The file is renamed
// into place so that a process refused meanwhile reads a whole id; and
// one left by a process killed earlier is removed if it cannot be
// replaced, since it would name a process that is gone.
func writeLockPID(file string) string {
	tmp := file + ".tmp"
	err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		os.Remove(file)
		return ""
	}
	return file
}

// readLockPID returns the process id recorded in the lock file, or 0.
func readLockPID(file string) int {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	b := make([]byte, 32)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
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
	if l == nil || l.dir == nil {
		return nil
	}
	// Removed while the directory is still held, so that it is never the
	// file of the next holder.
	if l.pidFile != "" {
		os.Remove(l.pidFile)
	}
	return l.dir.Close() // closing the last descriptor releases the flock
}
