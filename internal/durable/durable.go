// Package durable makes the files sumdb creates survive a crash or a power
// loss. Syncing a file is not enough: the directory entry that names it
// must be synced too, or the file may be gone after the crash (fsync(2):
// "Calling fsync() does not necessarily ensure that the entry in the
// directory containing the file has also reached disk").
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// SyncDir syncs the directory dir, so that the entries created, renamed or
// removed in it so far survive a crash. On Windows, where a directory
// cannot be opened to be synced and NTFS journals its entries, it does
// nothing; on a file system that cannot sync a directory (EINVAL), there is
// nothing more to do either.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// MkdirAll creates the directory dir and any missing parents with mode perm
// (before umask), as os.MkdirAll does, and syncs the parent of each
// directory it creates, so that the path survives a crash.
func MkdirAll(dir string, perm fs.FileMode) error {
	return mkdirAll(dir, perm, SyncDir)
}

// mkdirAll is MkdirAll syncing directories with syncDir.
func mkdirAll(dir string, perm fs.FileMode, syncDir func(string) error) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent, perm, syncDir); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		// Another process may have created it meanwhile.
		if fi, serr := os.Lstat(dir); serr != nil || !fi.IsDir() {
			return err
		}
	}
	return syncDir(parent)
}

// WriteFile writes data to file with mode perm through a temporary file in
// the same directory, synced, then renamed over file, and syncs the
// directory: a crash leaves the old content or the new, never a mix, and
// the new content survives once WriteFile returns nil.
func WriteFile(file string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := SyncDir(filepath.Dir(file)); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
