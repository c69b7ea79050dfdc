package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sumdb/sumdb/internal/durable"
)

// maxPEMFile bounds the size of a certificate or key file: a chain of a
// few certificates is a few kilobytes.
const maxPEMFile = 1 << 20

// acmeCacheDir is the directory, in the data directory, where autocert
// keeps the ACME account key and the certificates with their keys.
const acmeCacheDir = "acme"

// A tlsSetup is how serve speaks TLS: the configuration of the main
// listener, the handler of the HTTP-01 listener, and what to print.
type tlsSetup struct {
	config    *tls.Config
	challenge http.Handler // for --acme-http; nil without it
	mode      string       // "file" or "acme", for the log
	// urlHost returns the host clients are to use in the URL of the
	// GOSUMDB line, given the log's key name and the address the main
	// listener bound, and whether the certificate covers it.
	urlHost func(keyName, bound string) (string, bool)
}

// newTLSSetup returns the TLS setup cfg asks for, or nil for plain HTTP.
// It reads and checks the certificate files, or creates the ACME cache in
// the data directory (which serve must hold by then).
func newTLSSetup(cfg *ServeConfig, logger *slog.Logger) (*tlsSetup, error) {
	switch {
	case cfg.TLSCert != "":
		r, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, logger, time.Now)
		if err != nil {
			return nil, err
		}
		return &tlsSetup{
			config: &tls.Config{
				GetCertificate: r.GetCertificate,
				NextProtos:     []string{"h2", "http/1.1"},
				MinVersion:     tls.VersionTLS12,
			},
			mode: "file",
			urlHost: func(keyName, bound string) (string, bool) {
				return certURLHost(r.current().Leaf, keyName, bound)
			},
		}, nil
	case len(cfg.ACMEHosts) > 0:
		m, err := newACMEManager(cfg)
		if err != nil {
			return nil, err
		}
		s := &tlsSetup{
			config: &tls.Config{
				GetCertificate: m.GetCertificate,
				// acme-tls/1 for TLS-ALPN-01 validation (RFC 8737): autocert
				// answers a hello offering it alone with the token certificate.
				NextProtos: []string{"h2", "http/1.1", acme.ALPNProto},
				MinVersion: tls.VersionTLS12,
			},
			mode: "acme",
			urlHost: func(_, bound string) (string, bool) {
				return withPort(cfg.ACMEHosts[0], bound), true
			},
		}
		if cfg.ACMEHTTP != "" {
			// The default fallback redirects to https on port 443, where
			// the CA's TLS-ALPN-01 validation also connects: an ACME host
			// serves HTTPS there.
			s.challenge = m.HTTPHandler(nil)
		}
		return s, nil
	}
	return nil, nil
}

// newACMEManager returns the autocert manager of cfg's ACME settings, its
// cache created (mode 0700) in the data directory.
func newACMEManager(cfg *ServeConfig) (*autocert.Manager, error) {
	dir := filepath.Join(cfg.DataDir, acmeCacheDir)
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ACME cache directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("ACME cache directory: %w", err)
	}
	// It holds the account key and the certificates' keys.
	if perm := fi.Mode().Perm(); !fi.IsDir() || perm&0o077 != 0 {
		return nil, fmt.Errorf("ACME cache directory %s is accessible by group or others (mode %04o): run chmod 700 %s", dir, perm, dir)
	}
	m := &autocert.Manager{
		// --acme-host is the operator's acceptance of the CA's terms.
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(dir),
		HostPolicy: autocert.HostWhitelist(cfg.ACMEHosts...),
		Email:      cfg.ACMEEmail,
	}
	if cfg.ACMEDirectory != "" {
		m.Client = &acme.Client{DirectoryURL: cfg.ACMEDirectory}
	}
	return m, nil
}

// withPort returns host with the port of the address bound, unless it is
// 443, the port of an https URL without one.
func withPort(host, bound string) string {
	_, port, err := net.SplitHostPort(bound)
	if err != nil || port == "443" {
		return host
	}
	return net.JoinHostPort(host, port)
}

// certURLHost returns the host, with the port of the address bound, that
// the go command can verify leaf for: the host of the key name if leaf
// covers it, else the IP address bound if leaf covers it, else the first
// DNS name of leaf without a wildcard, else its first IP address. If leaf
// covers none of these, it returns the address bound, which no client
// will verify, and false.
func certURLHost(leaf *x509.Certificate, keyName, bound string) (string, bool) {
	nameHost, _, _ := strings.Cut(keyName, "/")
	if h, _, err := net.SplitHostPort(nameHost); err == nil {
		nameHost = h
	}
	boundHost, _, _ := net.SplitHostPort(bound)
	candidates := []string{nameHost}
	if ip := net.ParseIP(boundHost); ip != nil && !ip.IsUnspecified() {
		candidates = append(candidates, boundHost)
	}
	for _, d := range leaf.DNSNames {
		if !strings.Contains(d, "*") {
			candidates = append(candidates, d)
		}
	}
	for _, ip := range leaf.IPAddresses {
		candidates = append(candidates, ip.String())
	}
	for _, h := range candidates {
		if h != "" && leaf.VerifyHostname(h) == nil {
			return withPort(h, bound), true
		}
	}
	return bound, false
}

// A certReloader serves a certificate from files, read again when they
// change, so that a renewal needs no restart.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger
	now               func() time.Time

	loaded atomic.Pointer[loadedCert] // the pair served; swapped under mu

	mu       sync.Mutex // held while reading the files again
	failed   fileStamp  // guarded by mu; the files as they were when last refused
	failedAt time.Time  // guarded by mu; when they were refused
}

// A loadedCert is a certificate served, and its files as they were before
// they were read.
type loadedCert struct {
	cert  *tls.Certificate
	stamp fileStamp
}

// A fileStamp tells whether the certificate or key file has changed: a
// renewal that writes or renames new files changes a size or a
// modification time.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// stamp returns the stamp of the files now.
func (r *certReloader) stamp() (fileStamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("read TLS certificate: %w: check --tls-cert", err)
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("read TLS key: %w: check --tls-key", err)
	}
	return fileStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

// newCertReloader reads the certificate and key files and checks them: a
// key that does not match the certificate, or a certificate outside its
// validity period, is an error.
func newCertReloader(certFile, keyFile string, logger *slog.Logger, now func() time.Time) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, logger: logger, now: now}
	// The files as they are before they are read: a change while they are
	// read is seen at the next handshake.
	st, err := r.stamp()
	if err != nil {
		return nil, err
	}
	cert, err := loadKeyPair(certFile, keyFile, now())
	if err != nil {
		return nil, err
	}
	r.loaded.Store(&loadedCert{cert: cert, stamp: st})
	return r, nil
}

// current returns the certificate served.
func (r *certReloader) current() *tls.Certificate { return r.loaded.Load().cert }

// GetCertificate returns the certificate to serve, read again first if its
// files have changed since it was read. A pair that cannot be served is
// logged, and the pair served before goes on being served; the refused
// pair is read again when its files change, and at most every
// certRetryInterval while they do not: a renewal not valid yet when it was
// written becomes valid, a key's permissions are fixed after it is
// written, a file table that was full has room again. Two stat calls per
// handshake cost little next to the handshake itself.
func (r *certReloader) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cur := r.loaded.Load()
	st, err := r.stamp()
	if err != nil || st == cur.stamp {
		// A file missing for a moment, as in a non-atomic renewal, keeps
		// the pair served; the next handshake looks again.
		return cur.cert, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if cur = r.loaded.Load(); st == cur.stamp || st == r.failed && now.Sub(r.failedAt) < certRetryInterval {
		return cur.cert, nil
	}
	cert, err := loadKeyPair(r.certFile, r.keyFile, now)
	if err != nil {
		r.failed, r.failedAt = st, now
		r.logger.ErrorContext(helloContext(hello), "refusing the new TLS certificate, serving the previous one; it is read again when its files change, and every minute", "err", err)
		return cur.cert, nil
	}
	r.loaded.Store(&loadedCert{cert: cert, stamp: st})
	r.logger.InfoContext(helloContext(hello), "serving a new TLS certificate", certAttrs(cert.Leaf, r.certFile)...)
	return cert, nil
}

// certRetryInterval is how often a refused certificate pair is read again
// while its files do not change.
const certRetryInterval = time.Minute

// helloContext returns the context of the handshake of hello.
func helloContext(hello *tls.ClientHelloInfo) context.Context {
	if ctx := hello.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// certAttrs returns log attributes describing the certificate leaf, read
// from file: public information only.
func certAttrs(leaf *x509.Certificate, file string) []any {
	return []any{"file", file, "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames,
		"ip_addresses", leaf.IPAddresses, "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter}
}

// loadKeyPair reads a PEM certificate chain and its PEM private key, and
// checks that the key is the certificate's and that the certificate is
// valid at now. Errors never quote the files, which hold a private key.
func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := readPEMFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read TLS certificate: %w: check --tls-cert", err)
	}
	keyPEM, err := readPEMFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read TLS key: %w: check --tls-key", err)
	}
	if !hasPEM(certPEM, "CERTIFICATE") {
		return nil, fmt.Errorf("TLS certificate %s: no PEM certificate (\"-----BEGIN CERTIFICATE-----\") in it: give --tls-cert the server's certificate chain, the server's certificate first", certFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, fmt.Errorf("TLS key %s does not match the certificate %s: give --tls-key the private key the certificate was issued for", keyFile, certFile)
		}
		return nil, fmt.Errorf("TLS key %s or certificate %s: %w: give --tls-key the PEM private key of the certificate", keyFile, certFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate %s expired on %s: renew it", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("TLS certificate %s is not valid before %s: check the clock of this machine, or wait", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// readPEMFile reads a file of at most maxPEMFile bytes.
func readPEMFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes, too large for a PEM certificate chain or key", file, maxPEMFile)
	}
	return data, nil
}

// hasPEM reports whether data holds a PEM block of type typ.
func hasPEM(data []byte, typ string) bool {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return false
		}
		if b.Type == typ {
			return true
		}
	}
}

// logAttrs returns the attributes of the "serving" log line about TLS.
func (s *tlsSetup) logAttrs() []any {
	if s == nil {
		return []any{"tls", "off"}
	}
	return []any{"tls", s.mode}
}
