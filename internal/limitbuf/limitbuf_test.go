package limitbuf

import (
	"io"
	"strings"
	"testing"
)

func TestBuffer(t *testing.T) {
	for _, tt := range []struct {
		writes    []string
		limit     int
		want      string
		truncated bool
	}{
		{[]string{"abc"}, 5, "abc", false},
		{[]string{"abc", "de"}, 5, "abcde", false},
		{[]string{"abc", "def"}, 5, "abcde", true},
		{[]string{"abcdef", "g"}, 5, "abcde", true},
		{[]string{"x"}, 0, "", true},
	} {
		b := New(tt.limit)
		for _, w := range tt.writes {
			if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
				t.Errorf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
			}
		}
		if b.String() != tt.want || string(b.Bytes()) != tt.want || b.Truncated() != tt.truncated {
			t.Errorf("writes %q under %d = %q (truncated %v), want %q (%v)", tt.writes, tt.limit, b.String(), b.Truncated(), tt.want, tt.truncated)
		}
	}
}

// TestCopy checks that io.Copy cannot read through the limit, as it can
// through a bytes.Buffer's ReadFrom.
func TestCopy(t *testing.T) {
	b := New(10)
	n, err := io.Copy(b, strings.NewReader(strings.Repeat("y", 1<<20)))
	if n != 1<<20 || err != nil || b.String() != strings.Repeat("y", 10) || !b.Truncated() {
		t.Errorf("io.Copy of 1 MiB = %d, %v, kept %d bytes; want all copied, 10 kept", n, err, len(b.Bytes()))
	}
}
