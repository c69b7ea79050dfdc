package watch

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// goCommandLines returns the lines of a record text that the go command
// takes as the hashes of path@version (x/mod/sumdb.Client.Lookup keeps
// every line starting with "<path> <version> ", and cmd/go's checkSumDB
// accepts a hash found among them, or none): what a log serves for
// path@version, whatever the rest of the record holds.
func goCommandLines(text []byte, path, version string) []string {
	var lines []string
	for _, line := range strings.Split(string(text), "\n") {
		for _, v := range []string{version, version + "/go.mod"} {
			if strings.HasPrefix(line, path+" "+v+" ") {
				lines = append(lines, line)
			}
		}
	}
	return lines
}

// TestLooseRecordsAlert checks that a log cannot hide a version of a
// watched module from the watch, without a fork, by logging it in a
// record that the go command accepts but that is not in the form
// "sumdb audit" requires: an extra line, a single line, or extra lines in
// another module's record. Each record below is in the signed tree; a
// hostile log serves it for lookup/example.com/m@v1.6.6 (the go command
// checks the record's inclusion and takes the lines that name the version,
// not the record's first line), and the go command accepts the version.
// It checks too that a second hash of one kind, other than the authorized
// one, is a mismatch, and that a record that names a watched path in no
// line the go command reads is a "malformed" alert.
func TestLooseRecordsAlert(t *testing.T) {
	const path, version = "example.com/m", "v1.6.6"
	good := string(sumdbtest.SynthText(path, version))
	zip, mod, _ := strings.Cut(strings.TrimSuffix(good, "\n"), "\n")
	other := string(sumdbtest.SynthText("example.com/other", "v1.0.0"))
	evil := string(sumdbtest.SynthText(path, "v1.6.7"))
	evilZip, _, _ := strings.Cut(strings.Replace(evil, "v1.6.7", version, 1), "\n")
	authorized := NewAuthorized()
	if err := authorized.AddGoSum("go.sum", []byte(good)); err != nil {
		t.Fatal(err)
	}
	newAlert := []string{fmt.Sprintf("new %s@%s", path, version)}
	for _, tt := range []struct {
		name, lookupPath, text string
		auth                   *Authorized
		want                   []string
	}{
		{"an extra line", path, good + "x\n", nil, newAlert},
		{"zip line only", path, zip + "\n", nil, newAlert},
		{"in another module's record", "example.com/other", other + zip + "\n" + mod + "\n", nil, newAlert},
		{"authorized", path, good, authorized, nil},
		{"authorized, an extra line", path, good + "x\n", authorized, nil},
		{"a second zip hash", path, good + evilZip + "\n", authorized, []string{fmt.Sprintf("mismatch %s@%s", path, version)}},
		{"a second zip hash in another module's record", "example.com/other", other + evilZip + "\n", authorized, []string{fmt.Sprintf("mismatch %s@%s", path, version)}},
		{"no version line", "example.com/other", other + path + " " + version + "\n", nil, []string{"malformed " + path + "@"}},
		{"another module's malformed record", "example.com/other", other + "x\n", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want != nil && !strings.HasPrefix(tt.want[0], "malformed") {
				if got := goCommandLines([]byte(tt.text), path, version); len(got) == 0 {
					t.Fatalf("the go command takes no line of %q for %s@%s", tt.text, path, version)
				}
			}
			db := sumdbtest.MustStart(t, sumdbtest.Options{})
			lookupVersion := version
			if tt.lookupPath != path {
				lookupVersion = "v1.0.0"
			}
			if _, _, err := db.Log.Append(t.Context(), tt.lookupPath, lookupVersion, []byte(tt.text)); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			cfg := Config{Remote: openRemote(t, db), Dir: t.TempDir(), Modules: patterns(t, "example.com/m"), Authorized: tt.auth, Once: true, Sinks: []Sink{rec}}
			res, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.got(); !sameAlerts(got, tt.want) {
				t.Errorf("Run over record %q = %q (%d alerts, %d scanned), want %q", tt.text, got, res.Alerts, res.Scanned, tt.want)
			}
		})
	}
}
