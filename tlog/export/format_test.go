package export

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	for _, tt := range []struct {
		text          string
		path, version string // empty: an error
	}{
		{"a.com/m v1.0.0 h1:x=\na.com/m v1.0.0/go.mod h1:y=\n", "a.com/m", "v1.0.0"},
		{"a.com/m v1.0.0 h1:x=\na.com/m v1.0.0/go.mod h1:y=", "", ""},
		{"a.com/m v1.0.0 h1:x=\na.com/n v1.0.0/go.mod h1:y=\n", "", ""},
		{"a.com/m v1.0.0 h1:x=\na.com/m v1.0.1/go.mod h1:y=\n", "", ""},
		{"a.com/m v1.0.0 h1:x=\na.com/m v1.0.0 h1:y=\n", "", ""},
		{"a.com/m v1.0.0 h1:x=\na.com/m v1.0.0/go.mod h1:y= z\n", "", ""},
		{"a.com/m v1.0.0 h1:x= z\na.com/m v1.0.0/go.mod h1:y=\n", "", ""},
		{"a.com/m v1.0.0 h1:x=\na.com/m v1.0.0/go.mod \n", "", ""},
		{"a.com/m v1.0.0 h1:x=\na.com/m v1.0.0/go.mod h1:y=\nextra\n", "", ""},
		{"a.com/m  v1.0.0 h1:x=\na.com/m  v1.0.0/go.mod h1:y=\n", "", ""},
		{"", "", ""},
	} {
		path, version, err := parseRecord([]byte(tt.text))
		if tt.path == "" {
			if err == nil {
				t.Errorf("parseRecord(%q) = %q, %q, nil, want an error", tt.text, path, version)
			}
			continue
		}
		if err != nil || path != tt.path || version != tt.version {
			t.Errorf("parseRecord(%q) = %q, %q, %v, want %q, %q", tt.text, path, version, err, tt.path, tt.version)
		}
	}
}

// FuzzReadHeader checks that readHeader never panics and that what it
// accepts it writes back the same.
func FuzzReadHeader(f *testing.F) {
	f.Add("sumdb export 1\nkey a+1+b\nrecords 5\n\n")
	f.Add("sumdb export 2\nkey a\nrecords 5\n\n")
	f.Add("sumdb export 1\nrecords 5\nkey k\nkey k\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := readHeader(bufio.NewReader(strings.NewReader(s)))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := writeHeader(&buf, h); err != nil {
			t.Fatal(err)
		}
		h2, err := readHeader(bufio.NewReader(&buf))
		if err != nil || h2 != h {
			t.Fatalf("readHeader(writeHeader(%+v)) = %+v, %v", h, h2, err)
		}
	})
}

// zeros is an endless file without a newline, that fails the test after
// limit bytes.
type zeros struct {
	t     *testing.T
	read  int
	limit int
}

func (z *zeros) Read(p []byte) (int, error) {
	if z.read >= z.limit {
		z.t.Errorf("readHeader read %d bytes of a header without a newline", z.read)
		return 0, io.ErrUnexpectedEOF
	}
	clear(p)
	z.read += len(p)
	return len(p), nil
}

// TestReadHeaderNoNewline checks that a file without a newline is refused
// after no more than a buffer's worth of it.
func TestReadHeaderNoNewline(t *testing.T) {
	z := &zeros{t: t, limit: 8 << 20}
	_, err := readHeader(bufio.NewReaderSize(z, 1<<20))
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("readHeader(zeros) = %v, want too long", err)
	}
}
