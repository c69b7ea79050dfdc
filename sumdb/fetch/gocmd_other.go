//go:build !unix

package fetch

import (
	"io/fs"
	"os/exec"
)

// killProcessGroup leaves cmd's cancellation to kill the command alone:
// this system has no process groups to kill its children with, which
// Cmd.WaitDelay stops waiting for.
func killProcessGroup(cmd *exec.Cmd) {}

// diskSize returns the bytes of disk taken by the file of fi, as far as
// this system tells: its size.
func diskSize(fi fs.FileInfo) int64 { return fi.Size() }
