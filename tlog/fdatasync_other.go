//go:build !linux

package tlog

import "os"

// fdatasync syncs f; systems other than Linux get a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }
