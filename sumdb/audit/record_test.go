package audit

import (
	"bytes"
	"strings"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/sumdbtest"
)

func TestParseRecord(t *testing.T) {
	good := string(sumdbtest.SynthText("example.com/m", "v1.2.3"))
	zip, mod, _ := strings.Cut(good, "\n")
	hash := zip[strings.Index(zip, "h1:"):]
	tests := []struct {
		text string
		bad  string // in the error; "" for a well-formed record
	}{
		{good, ""},
		{string(sumdbtest.SynthText("example.com/Upper/v2", "v2.0.0")), ""},
		{string(sumdbtest.SynthText("example.com/inc", "v3.0.0+incompatible")), ""},
		{string(sumdbtest.SynthText("example.com/p", "v0.0.0-20191109021931-daa7c04131f5")), ""},
		{string(sumdbtest.SynthText("golang.org/toolchain", "v0.0.1-go1.21.0.linux-amd64")), ""},
		{string(sumdbtest.SynthText("gopkg.in/yaml.v2", "v2.4.0")), ""},
		{zip + "\n", "has one line"},
		{good + mod, "has 3 lines"},
		{strings.TrimSuffix(good, "\n"), "does not end with a newline"},
		{"", "does not end with a newline"},
		{"\n", "is not \"<path> <version> h1:<hash>\""},
		{strings.Replace(good, " ", "  ", 1), "is not"},
		{strings.Replace(good, "h1:", "h2:", 1), "does not start with h1:"},
		{strings.Replace(good, hash, "h1:AAAA", 1), "not the base64 encoding of 32 bytes"},
		{strings.Replace(good, hash, "h1:"+strings.Repeat("!", 44), 1), "not the base64 encoding of 32 bytes"},
		{strings.Replace(good, "/go.mod", "", 1), "line 2 is of example.com/m v1.2.3"},
		{strings.Replace(good, "v1.2.3/go.mod", "v1.2.4/go.mod", 1), "line 2 is of"},
		{string(sumdbtest.SynthText("example.com/m", "v1.2")), "must be canonical"},
		{string(sumdbtest.SynthText("example.com/m/v2", "v1.0.0")), "invalid version"},
		{string(sumdbtest.SynthText("example.com/m", "v1.0.0+incompatible")), "+incompatible"},
		{string(sumdbtest.SynthText("Example..com/m", "v1.0.0")), "malformed module path"},
		{strings.Replace(good, "example.com/m", "example.com/\tm", 2), "holds the byte 0x09"},
		{strings.Replace(good, "example.com/m", "example.com/é", 2), "holds the byte"},
	}
	for _, tt := range tests {
		r := parseRecord([]byte(tt.text))
		if r.leaf != xtlog.RecordHash([]byte(tt.text)) {
			t.Errorf("parseRecord(%q).leaf is not the record hash", tt.text)
		}
		switch {
		case tt.bad == "" && r.bad != nil:
			t.Errorf("parseRecord(%q) = %v, want a well-formed record", tt.text, r.bad)
		case tt.bad == "" && !strings.HasPrefix(tt.text, r.path+" "+r.version+" h1:"):
			t.Errorf("parseRecord(%q) is of %s", tt.text, r.key())
		case tt.bad != "" && (r.bad == nil || !strings.Contains(r.bad.Error(), tt.bad)):
			t.Errorf("parseRecord(%q) = %v, want an error with %q", tt.text, r.bad, tt.bad)
		}
	}
}

func TestSplitDataTile(t *testing.T) {
	a, b := sumdbtest.SynthText("example.com/a", "v1.0.0"), sumdbtest.SynthText("example.com/b", "v1.0.0")
	tile := func(texts ...[]byte) []byte {
		var data []byte
		for _, text := range texts {
			data = append(data, text...)
			data = append(data, '\n')
		}
		return data
	}
	tests := []struct {
		data []byte
		w    int
		want [][]byte // nil for an error
	}{
		{tile(a, b), 2, [][]byte{a, b}},
		{tile(a), 1, [][]byte{a}},
		{[]byte("x\n\n"), 1, [][]byte{[]byte("x\n")}},
		{tile(a, b), 1, nil},
		{tile(a, b), 3, nil},
		{tile(a, b)[:len(tile(a, b))-1], 2, nil},
		{append(tile(a, b), 'x'), 2, nil},
		{append(tile(a), '\n'), 1, nil},
		{nil, 1, nil},
	}
	for _, tt := range tests {
		got, err := SplitDataTile(tt.data, tt.w)
		if tt.want == nil {
			if err == nil {
				t.Errorf("SplitDataTile(%q, %d) = %q, want an error", tt.data, tt.w, got)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("SplitDataTile(%q, %d) = %q, %v; want %q", tt.data, tt.w, got, err, tt.want)
			continue
		}
		for i := range got {
			if !bytes.Equal(got[i], tt.want[i]) {
				t.Errorf("SplitDataTile(%q, %d)[%d] = %q, want %q", tt.data, tt.w, i, got[i], tt.want[i])
			}
		}
	}
}

// FuzzSplitDataTile checks that a data tile splits into records that format
// back into exactly the same bytes, each a valid record text.
func FuzzSplitDataTile(f *testing.F) {
	f.Add(append(sumdbtest.SynthText("example.com/a", "v1.0.0"), '\n'), 1)
	f.Add([]byte("a\n\nb\nc\n\n"), 2)
	f.Add([]byte("a\n\n\n"), 1)
	f.Fuzz(func(t *testing.T, data []byte, w int) {
		if w < 1 || w > 256 {
			return
		}
		texts, err := SplitDataTile(data, w)
		if err != nil {
			return
		}
		var again []byte
		for i, text := range texts {
			if len(text) == 0 || text[len(text)-1] != '\n' || bytes.Contains(text, []byte("\n\n")) {
				t.Fatalf("record %d = %q: not a record text", i, text)
			}
			again = append(again, text...)
			again = append(again, '\n')
			if r := parseRecord(text); r.bad == nil {
				if _, err := xtlog.FormatRecord(0, text); err != nil {
					t.Fatalf("record %q is well formed but FormatRecord refuses it: %v", text, err)
				}
			}
		}
		if len(texts) != w || !bytes.Equal(again, data) {
			t.Fatalf("SplitDataTile(%q, %d) = %q, which does not format back to the tile", data, w, texts)
		}
	})
}
