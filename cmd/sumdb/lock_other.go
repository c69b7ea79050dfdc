//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import "os"

// lockFile does nothing on systems without flock(2): there, nothing stops
// a second process on the same data directory.
func lockFile(*os.File) error { return nil }
