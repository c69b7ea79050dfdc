package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// TestWatchOnceRefusedWins checks the exit status of a one-shot
// watch that delivers an alert and then finds a data tile that is not the
// signed tree's: the records after it were not scanned, and the database
// served data that does not verify, which the status must say (3), not
// only "alerts" (1), so that a scheduled job tells evidence against the
// log from a version to look at.
func TestWatchOnceRefusedWins(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	rogue := modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/m\n"}}
	db.Add(rogue)
	db.GoSum(rogue)
	// A second batch of the scan: 64 tiles of 256 records a batch.
	db.AppendSynthetic("other", 64*256+10)
	db.SetTamper(func(path string, body []byte) []byte {
		if strings.HasSuffix(path, "/tile/8/data/064") || strings.Contains(path, "/tile/8/data/064.p/") {
			return bytes.Replace(body, []byte("example.com/other"), []byte("example.com/OTHER"), 1)
		}
		return body
	})
	code, out, errOut := watchStatus(t, "--once", "--sumdb", db.GOSUMDB(), "--module", "example.com/m", "--state", t.TempDir())
	if !strings.Contains(out, "example.com/m@v1.0.0") || !strings.Contains(errOut, "does not verify") {
		t.Fatalf("watch = %d, %q (%s); want the alert, then the refusal", code, out, errOut)
	}
	if code != statusWatchError {
		t.Errorf("watch that delivered an alert, then was served a forged data tile = %d, want %d (%s)", code, statusWatchError, errOut)
	}
}
