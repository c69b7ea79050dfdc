package watch

import (
	"bytes"
	"strings"

	"github.com/sumdb/sumdb/sumdb/audit"
)

// A loggedVersion is a module version that a record's lines name, with
// every hash they give it, distinct, in the order of the lines.
type loggedVersion struct {
	path, version string
	zips, mods    []string
}

// recordVersions returns the versions that the lines of a record text name
// as the go command reads them: x/mod's sumdb.Client.Lookup of
// path@version keeps every line of the record that starts with
// "<path> <version> " or "<path> <version>/go.mod ", wherever it sits and
// whatever the record's other lines are, and the go command accepts a hash
// found among them. So every line of the form
// "<path> <version>[/go.mod] <hash>" names a version the log serves, not
// only the lines of a record in the form "sumdb audit" requires (its first
// two). Only the versions whose path watched reports are returned, in the
// order of their first line.
func recordVersions(text []byte, watched func(path string) bool) []*loggedVersion {
	var vs []*loggedVersion
	byKey := make(map[string]*loggedVersion)
	for line := range bytes.SplitSeq(text, []byte("\n")) {
		path, rest, ok1 := strings.Cut(string(line), " ")
		version, hash, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || !watched(path) {
			continue
		}
		version, isMod := strings.CutSuffix(version, "/go.mod")
		key := path + " " + version
		v := byKey[key]
		if v == nil {
			v = &loggedVersion{path: path, version: version}
			byKey[key] = v
			vs = append(vs, v)
		}
		if isMod {
			v.mods = appendNew(v.mods, hash)
		} else {
			v.zips = appendNew(v.zips, hash)
		}
	}
	return vs
}

// appendNew appends s to list unless list holds it.
func appendNew(list []string, s string) []string {
	for _, t := range list {
		if t == s {
			return list
		}
	}
	return append(list, s)
}

// hashes returns the hashes of v for an alert: of each kind, the one given,
// or those given joined by a space when the record gives more than one.
func (v *loggedVersion) hashes() Hashes {
	return Hashes{Zip: strings.Join(v.zips, " "), Mod: strings.Join(v.mods, " ")}
}

// alerts returns the alerts of record id, of text.
func (w *watcher) alerts(id int64, text []byte) []Alert {
	vs := recordVersions(text, w.watched)
	var alerts []Alert
	for _, v := range vs {
		a := Alert{Kind: KindNew, Module: v.path, Version: v.version, Hashes: v.hashes(),
			Record: id, HeadSize: w.head.N, Database: w.name}
		if w.cfg.Authorized != nil {
			kind, want := w.cfg.Authorized.check(v)
			if kind == "" {
				continue
			}
			a.Kind, a.Authorized = kind, want
		}
		alerts = append(alerts, a)
	}
	if len(vs) > 0 {
		return alerts
	}
	// No line names a watched version: a record that is not well formed
	// but names a watched module path anywhere is an alert too, for the
	// owners to look at what the log holds.
	_, err := audit.ParseRecord(text)
	if err == nil {
		return nil
	}
	for _, p := range w.cfg.Modules {
		if bytes.Contains(text, []byte(p.path)) {
			return []Alert{{Kind: KindMalformed, Module: p.path, Problem: err.Error(),
				Record: id, HeadSize: w.head.N, Database: w.name}}
		}
	}
	return nil
}

// watched reports whether a module path matches a watched pattern.
func (w *watcher) watched(path string) bool {
	for _, p := range w.cfg.Modules {
		if p.Match(path) {
			return true
		}
	}
	return false
}
