package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/internal/sumdbtest"
	"github.com/sumdb/sumdb/sumdb/watch"
)

// watchStatus runs "sumdb watch" with args and returns its exit status and
// stdout.
func watchStatus(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	goEnv := mapGoEnv(map[string]string{"GOAUTH": "off", "GOPROXY": "off"})
	err := runWatchEnv(t.Context(), args, &stdout, &stderr, goEnv)
	return report(err, &stderr), stdout.String(), stderr.String()
}

func TestWatchOnce(t *testing.T) {
	db := sumdbtest.MustStart(t, sumdbtest.Options{})
	released := modproxy.Module{Path: "example.com/m", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/m\n"}}
	db.Add(released)
	authorized := filepath.Join(t.TempDir(), "released.sum")
	if err := os.WriteFile(authorized, []byte(db.GoSum(released)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--once", "--sumdb", db.GOSUMDB(), "--module", "example.com/m/...", "--state", t.TempDir(), "--authorized", authorized, "--format", "json"}

	if code, out, errOut := watchStatus(t, args...); code != 0 || out != "" {
		t.Fatalf("watch of an authorized release = %d, %q (%s); want 0, no alert", code, out, errOut)
	}
	rogue := modproxy.Module{Path: "example.com/m/v2", Version: "v2.0.0", Files: map[string]string{"go.mod": "module example.com/m/v2\n"}}
	db.Add(rogue)
	db.GoSum(rogue)
	code, out, errOut := watchStatus(t, args...)
	var a watch.Alert
	if code != statusAlert || json.Unmarshal([]byte(out), &a) != nil || a.Kind != watch.KindUnauthorized || a.Module != rogue.Path || a.Record != 1 || a.HeadSize != 2 {
		t.Fatalf("watch of an unauthorized version = %d, %q (%s); want 1, its JSON alert", code, out, errOut)
	}
	if code, out, _ := watchStatus(t, args...); code != 0 || out != "" {
		t.Errorf("watch again = %d, %q; want 0, the alert not repeated", code, out)
	}

	db.SetStatus(http.StatusInternalServerError)
	if code, _, errOut := watchStatus(t, args...); code != statusWatchError || !strings.Contains(errOut, "fetch the signed head") {
		t.Errorf("watch of a failing database = %d (%s), want 3", code, errOut)
	}
}

func TestWatchUsage(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no state", []string{"--sumdb", "k", "--module", "example.com/m"}, "--state is required"},
		{"no module", []string{"--sumdb", "k", "--state", "d"}, "--module is required"},
		{"bad module", []string{"--sumdb", "k", "--state", "d", "--module", "not a path"}, "--module"},
		{"bad format", []string{"--sumdb", "k", "--state", "d", "--module", "example.com/m", "--format", "xml"}, "--format"},
		{"bad from", []string{"--sumdb", "k", "--state", "d", "--module", "example.com/m", "--from", "-1"}, "--from"},
		{"bad webhook", []string{"--sumdb", "k", "--state", "d", "--module", "example.com/m", "--webhook", "ftp://x"}, "--webhook"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := watchStatus(t, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("watch %q = %d, %q; want 2, %q", tt.args, code, errOut, tt.want)
			}
		})
	}
	var uerr *usageError
	if err := runWatchEnv(t.Context(), []string{"extra"}, &bytes.Buffer{}, &bytes.Buffer{}, nil); !errors.As(err, &uerr) {
		t.Errorf("watch extra = %v, want a usage error", err)
	}
}
