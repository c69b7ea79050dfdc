//go:build unix

package fetch

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDiskUsedSmallFiles checks that the disk a fetch's directory takes is
// measured as the file system counts it: a module of many small files (a
// zip under MaxZipSize may hold a great many) takes a block and an inode
// for each, far more than the sum of their sizes, and the bound of
// MaxDisk must hold for it too.
func TestDiskUsedSmallFiles(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		d := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		for j := range 100 {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprint(j)), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	var used int64 // bytes allocated, as du counts them
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				used += st.Blocks * 512
			}
		}
		return nil
	})
	if used == 0 {
		t.Skip("the file system reports no blocks")
	}
	r := &goRun{g: &GoCommand{maxDisk: 1 << 40}, dir: dir}
	if got := r.diskUsed(); got < used/2 {
		t.Errorf("diskUsed() of 2000 one-byte files in 20 directories = %d bytes, want about %d (the blocks they take): a module of small files passes MaxDisk %d times over", got, used, used/max(got, 1))
	}
}
