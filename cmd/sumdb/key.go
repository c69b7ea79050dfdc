package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumdb/sumdb/internal/durable"
)

// maxKeyFileSize bounds what is read of a key file; a signer key is about
// 100 bytes.
const maxKeyFileSize = 4 << 10

// A key is the log's signing key pair.
type key struct {
	Signer   note.Signer
	Verifier note.Verifier
	VKey     string // the encoded verifier key, for GOSUMDB
}

// errNoKeyFile is returned by readKeyFile when the file does not exist.
var errNoKeyFile = errors.New("key file does not exist")

// readKeyFile reads a signer key file written by writeKeyFile. It refuses a
// file that others may read, and never repeats the file's content in an error.
func readKeyFile(file string) (*key, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", file, errNoKeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", file)
	}
	// Windows has no such permission bits; there the file's ACL protects it.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("key file %s is accessible by group or others (mode %04o): run chmod 600 %s", file, perm, file)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	malformed := fmt.Errorf("key file %s is not a signer key (want the one line PRIVATE+KEY+<name>+<hash>+<key> that sumdb keygen writes)", file)
	if len(data) > maxKeyFileSize {
		return nil, malformed
	}
	skey := string(bytes.TrimSpace(data))
	if strings.ContainsAny(skey, "\r\n") {
		return nil, malformed
	}
	k, err := parseSignerKey(skey)
	if err != nil {
		return nil, malformed
	}
	return k, nil
}

// parseSignerKey parses an encoded signer key and derives its verifier.
func parseSignerKey(skey string) (*key, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	// note.NewSigner has checked the format: PRIVATE+KEY+name+hash+base64(alg, seed)
	// with the Ed25519 algorithm, and that hash matches the derived public key.
	// The key's base64 may itself hold plus signs: split at the first four.
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return nil, errors.New("malformed signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return nil, errors.New("malformed signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if verifier.KeyHash() != signer.KeyHash() {
		return nil, errors.New("signer key hash does not match its public key")
	}
	return &key{Signer: signer, Verifier: verifier, VKey: vkey}, nil
}

// generateKey creates a new key pair named name and returns it with the
// encoded signer key.
func generateKey(name string) (*key, string, error) {
	if err := checkName(name); err != nil {
		return nil, "", fmt.Errorf("key name %w", err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, "", fmt.Errorf("generate key %s: %w", name, err)
	}
	k, err := parseSignerKey(skey)
	if err != nil {
		return nil, "", fmt.Errorf("generate key %s: %w", name, err)
	}
	return k, skey, nil
}

// writeKeyFile writes the signer key skey to a new file with mode 0600,
// creating its directory (mode 0700) if needed, and makes it durable with
// syncDir (durable.SyncDir): the file synced, then its directory, so that a
// power cut cannot take away a key whose log the store keeps. It never
// overwrites a file, and removes the file it created if any step fails.
func writeKeyFile(file, skey string, syncDir func(dir string) error) (err error) {
	dir := filepath.Dir(file)
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("key file %s already exists; a key is never overwritten: choose another file or remove this one", file)
	}
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(file)
		}
	}()
	if _, err := f.WriteString(skey + "\n"); err != nil {
		return fmt.Errorf("write key file %s: %w", file, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write key file %s: %w", file, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("write key file %s: %w", file, cerr)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write key file %s: %w", file, err)
	}
	return nil
}
