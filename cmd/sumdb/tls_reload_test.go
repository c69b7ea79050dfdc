package main

import (
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestCertReloaderRenewalValidLater checks a renewal whose certificate is
// not yet valid when the files change (issued with a NotBefore a little
// ahead of this machine's clock, or deployed early): it is refused then,
// and must be served once it is valid, all the more once the pair served
// before has expired. The files do not change again until the next
// renewal, weeks later.
func TestCertReloaderRenewalValidLater(t *testing.T) {
	ca := newTestCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}

	old := ca.issue(t, certSpec{ips: loopback.ips, notBefore: now.Add(-time.Hour), notAfter: now.Add(90 * time.Second)})
	writePair(t, certFile, keyFile, old.cert, old.key)
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler), clock)
	if err != nil {
		t.Fatal(err)
	}
	renewed := ca.issue(t, certSpec{ips: loopback.ips, notBefore: now.Add(time.Minute), notAfter: now.Add(24 * time.Hour)})
	writePair(t, certFile, keyFile, renewed.cert, renewed.key)
	if cert, err := r.GetCertificate(&tls.ClientHelloInfo{}); err != nil || cert.Leaf.SerialNumber.Cmp(old.serial) != 0 {
		t.Fatalf("GetCertificate() before the renewal is valid = serial %v, %v; want the old pair's %v", cert.Leaf.SerialNumber, err, old.serial)
	}

	advance(2 * time.Minute) // the renewal is valid, the old pair expired
	cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || cert.Leaf.SerialNumber.Cmp(renewed.serial) != 0 {
		t.Fatalf("GetCertificate() once the renewed pair on disk is valid = serial %v (expired %v: %v), %v; want the renewed pair's %v: "+
			"a renewal refused once is never read again until the files change, and the expired pair served meanwhile",
			cert.Leaf.SerialNumber, cert.Leaf.NotAfter.Before(clock()), cert.Leaf.NotAfter.Format(time.RFC3339), err, renewed.serial)
	}
}
