package mirror

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb"
)

// goVerify looks path@version up as the go command does (x/mod's
// sumdb.Client, with an empty cache), through the mirror of e under its
// /sumdb/<name>/ path, and returns the client's error, or an error if the
// lines it verified are not the record's.
func goVerify(t *testing.T, e *env, path, version string) error {
	t.Helper()
	srv := httptest.NewServer(NewHandler(http.NotFoundHandler(), "", e.m))
	defer srv.Close()
	ops := &goOps{base: srv.URL + "/sumdb/" + e.m.Name(), key: e.m.remote.Key, config: make(map[string][]byte)}
	c := sumdb.NewClient(ops)
	lines, err := c.Lookup(path, version)
	if err != nil {
		return err
	}
	if ops.security != "" {
		return errors.New(ops.security)
	}
	id, text, err := e.m.Lookup(t.Context(), path, version)
	if err != nil {
		return err
	}
	if first, _, _ := strings.Cut(string(text), "\n"); len(lines) != 1 || lines[0] != first {
		return fmt.Errorf("verified lines %q, want the first of record %d %q", lines, id, text)
	}
	return nil
}

// goOps are the sumdb.ClientOps of a go command with an empty cache that
// reads a checksum database at base.
type goOps struct {
	base, key string

	mu       sync.Mutex
	config   map[string][]byte // guarded by mu
	security string            // guarded by mu
}

func (o *goOps) ReadRemote(path string) ([]byte, error) {
	code, body, _, err := fetch(o.base + path)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	return body, err
}

func (o *goOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.key), nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.config[file], nil
}

func (o *goOps) WriteConfig(file string, old, new []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if string(o.config[file]) != string(old) {
		return sumdb.ErrWriteConflict
	}
	o.config[file] = new
	return nil
}

func (o *goOps) ReadCache(file string) ([]byte, error) { return nil, os.ErrNotExist }
func (o *goOps) WriteCache(file string, data []byte)   {}
func (o *goOps) Log(msg string)                        {}

func (o *goOps) SecurityError(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.security = msg
}
