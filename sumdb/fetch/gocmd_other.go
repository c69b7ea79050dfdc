//go:build !unix

package fetch

import "os/exec"

// killProcessGroup leaves cmd's cancellation to kill the command alone:
// this system has no process groups to kill its children with, which
// Cmd.WaitDelay stops waiting for.
func killProcessGroup(cmd *exec.Cmd) {}
