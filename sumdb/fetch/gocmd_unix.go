//go:build unix

package fetch

import (
	"io/fs"
	"os/exec"
	"syscall"
)

// killProcessGroup makes cmd run in a process group of its own, and its
// cancellation kill the whole group: the go command's git, and git's
// helpers (git-remote-https, ssh), die with it.
func killProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Before Wait reaps it, the group's id is still the command's.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// diskSize returns the bytes of disk that the file system allocated to the
// file of fi: its blocks.
func diskSize(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
