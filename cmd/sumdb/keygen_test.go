package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/durable"
)

func TestKeygen(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "keys", "sum.key")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"keygen", "--name", "sum.example.com", "--out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("keygen: %v", err)
	}
	vkey := strings.TrimSuffix(stdout.String(), "\n")
	if strings.Contains(vkey, "\n") {
		t.Fatalf("keygen stdout = %q, want the verifier key alone on a line", stdout.String())
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("keygen printed %q, not a verifier key: %v", vkey, err)
	}
	if v.Name() != "sum.example.com" {
		t.Errorf("verifier name = %q, want sum.example.com", v.Name())
	}

	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 && runtime.GOOS != "windows" {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	skey := strings.TrimSpace(string(data))
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("key file holds no signer key: %v", err)
	}
	if signer.KeyHash() != v.KeyHash() {
		t.Errorf("signer key hash %08x, verifier key hash %08x", signer.KeyHash(), v.KeyHash())
	}
	// The private part never leaves the file.
	secret := strings.SplitN(skey, "+", 5)[4]
	for name, s := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		if strings.Contains(s, "PRIVATE") || strings.Contains(s, secret) {
			t.Errorf("keygen %s %q holds the private key", name, s)
		}
	}
	k, err := readKeyFile(out)
	if err != nil {
		t.Fatalf("readKeyFile(keygen's file): %v", err)
	}
	if k.VKey != vkey {
		t.Errorf("readKeyFile derived verifier key %q, keygen printed %q", k.VKey, vkey)
	}

	// A second run must not overwrite the key.
	stdout.Reset()
	stderr.Reset()
	err = run(context.Background(), []string{"keygen", "--name", "other.example.com", "--out", out}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("keygen over an existing file: error %v, want already exists", err)
	}
	if stdout.Len() > 0 {
		t.Errorf("failed keygen printed %q", stdout.String())
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(after, data) {
		t.Error("keygen changed an existing key file")
	}
}

func TestKeygenDefaultOut(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"keygen", "--name", "sum.example.com"}, &stdout, &stderr); err != nil {
		t.Fatalf("keygen: %v", err)
	}
	// The default is the key file serve uses by default.
	if _, err := readKeyFile(filepath.Join(dir, "sumdb-data", "signer.key")); err != nil {
		t.Fatal(err)
	}
}

func TestKeygenBadName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"https://sum.example.com", "Sum.Example.Com", "sum example", "a+b", ""} {
		out := filepath.Join(t.TempDir(), "k")
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"keygen", "--name", name, "--out", out}, &stdout, &stderr)
		if report(err, &stderr) != 2 {
			t.Errorf("keygen --name %q: %v, want a usage error", name, err)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("keygen --name %q wrote a key", name)
		}
	}
}

func TestReadKeyFile(t *testing.T) {
	t.Parallel()
	_, skey, err := generateKey("sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	write := func(content string, perm os.FileMode) string {
		file := filepath.Join(t.TempDir(), "signer.key")
		if err := os.WriteFile(file, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, perm); err != nil { // whatever the umask
			t.Fatal(err)
		}
		return file
	}

	if _, err := readKeyFile(write(skey+"\n", 0o600)); err != nil {
		t.Errorf("readKeyFile(good key) = %v", err)
	}
	if _, err := readKeyFile(write(skey, 0o400)); err != nil {
		t.Errorf("readKeyFile(read-only key) = %v", err)
	}
	if _, err := readKeyFile(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("readKeyFile(missing) = %v, want does not exist", err)
	}
	if runtime.GOOS != "windows" {
		file := write(skey, 0o644)
		_, err := readKeyFile(file)
		if want := "run chmod 600 " + file; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("readKeyFile(mode 0644) = %v, want %q", err, want)
		}
	}

	vkeyOnly := skey[len("PRIVATE+KEY+"):]
	flipped := []byte(skey)
	flipped[len(flipped)-3] ^= 1
	for name, content := range map[string]string{
		"empty":        "",
		"verifier key": vkeyOnly,
		"two keys":     skey + "\n" + skey + "\n",
		"bad hash":     string(flipped),
		"garbage":      "PRIVATE+KEY+hunter2",
		"huge":         strings.Repeat(skey, 100),
	} {
		_, err := readKeyFile(write(content, 0o600))
		if err == nil || !strings.Contains(err.Error(), "is not a signer key") {
			t.Errorf("readKeyFile(%s) = %v, want is not a signer key", name, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), skey[len(skey)-20:]) {
			t.Errorf("readKeyFile(%s) error %q repeats the file's content", name, err)
		}
	}
}

// TestWriteKeyFileSyncsDirectory checks that a new key file is made
// durable: its directory is synced once the file is whole, and a failed
// sync fails the write and leaves no key behind. (A real power cut cannot
// be made in a test; this proves the order of the calls, and that a sync
// error reaches the user.)
func TestWriteKeyFileSyncsDirectory(t *testing.T) {
	t.Parallel()
	_, skey, err := generateKey("sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	file := filepath.Join(dir, "signer.key")
	var synced []string
	err = writeKeyFile(file, skey, func(d string) error {
		synced = append(synced, d)
		if d == dir {
			if data, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(data)) != skey {
				t.Errorf("directory synced before the key file was whole: %v", err)
			}
		}
		return durable.SyncDir(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(synced, dir) {
		t.Errorf("writeKeyFile synced %q, not the key file's directory %s", synced, dir)
	}

	failed := errors.New("injected sync failure")
	file2 := filepath.Join(dir, "other.key")
	err = writeKeyFile(file2, skey, func(string) error { return failed })
	if !errors.Is(err, failed) {
		t.Fatalf("writeKeyFile with a failing directory sync = %v, want that error", err)
	}
	if strings.Contains(err.Error(), skey[len(skey)-20:]) {
		t.Errorf("writeKeyFile error %q holds the key", err)
	}
	if _, err := os.Stat(file2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key file whose directory could not be synced was left behind (stat: %v)", err)
	}
}
