package check

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	var done atomic.Int64
	done.Store(3)
	stop := startProgress(&b, &done, 5)
	time.Sleep(1300 * time.Millisecond)
	stop()
	out := b.String()
	line := "sumdb check: 3/5 module versions checked"
	if !strings.HasPrefix(out, "\r"+line) || !strings.HasSuffix(out, "\r"+strings.Repeat(" ", len(line))+"\r") {
		t.Errorf("progress output %q, want %q lines, then the line cleared", out, line)
	}

	// A short run prints nothing.
	b.Reset()
	stop = startProgress(&b, &done, 5)
	stop()
	if b.Len() != 0 {
		t.Errorf("progress output of a short run = %q, want nothing", b.String())
	}
}
