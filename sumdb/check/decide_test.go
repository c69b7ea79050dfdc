package check

import "testing"

// TestDecideLine checks that the first line of the log's record for the
// go.sum line's module version decides, as in the go command, even when a
// later line of a malformed record would match.
func TestDecideLine(t *testing.T) {
	e := Entry{Path: "example.com/m", Version: "v1.0.0", Hash: "h1:good="}
	for _, tt := range []struct {
		name    string
		lines   []string
		want    Kind
		logHash string
	}{
		{"match", []string{"example.com/m v1.0.0 h1:good=", "example.com/m v1.0.0/go.mod h1:mod="}, OK, "h1:good="},
		{"mismatch", []string{"example.com/m v1.0.0 h1:bad=", "example.com/m v1.0.0/go.mod h1:mod="}, Mismatch, "h1:bad="},
		{"mismatch first", []string{"example.com/m v1.0.0 h1:bad=", "example.com/m v1.0.0 h1:good="}, Mismatch, "h1:bad="},
		{"no line", []string{"example.com/m v1.0.0/go.mod h1:mod="}, Mismatch, ""},
	} {
		res := &Result{Entry: e}
		decideLine(res, tt.lines)
		if res.Kind != tt.want || res.LogHash != tt.logHash {
			t.Errorf("%s: kind %v, log hash %q; want %v, %q", tt.name, res.Kind, res.LogHash, tt.want, tt.logHash)
		}
	}
}
