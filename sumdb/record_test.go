package sumdb

import (
	"bytes"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"
)

// FuzzAppendLookup checks that the lookup answer the server formats is the
// one of xtlog.FormatRecord followed by the note, and that it refuses the
// record texts FormatRecord refuses.
func FuzzAppendLookup(f *testing.F) {
	for _, text := range []string{
		"example.com/m v1.0.0 h1:AAAA=\nexample.com/m v1.0.0/go.mod h1:BBBB=\n",
		"", "\n", "a\n", "a", "a\n\n", "\nb\n", "a\tb\n", "é\n", "\xff\n", "\xef\xbf\xbd\n", "a\r\n", "\x7f\n",
	} {
		f.Add(int64(42), []byte(text))
	}
	f.Fuzz(func(t *testing.T, id int64, text []byte) {
		if id < 0 {
			id = -id
		}
		if id < 0 {
			return
		}
		note := []byte("go.sum database tree\n1\nhash\n\n— sig\n")
		want, err := xtlog.FormatRecord(id, text)
		if valid := validRecordText(text); valid != (err == nil) {
			t.Fatalf("validRecordText(%q) = %v, FormatRecord error %v", text, valid, err)
		}
		if err != nil {
			return
		}
		got := appendLookup(nil, id, text, note)
		if want = append(want, note...); !bytes.Equal(got, want) {
			t.Fatalf("appendLookup(%d, %q) = %q, want %q", id, text, got, want)
		}
	})
}
