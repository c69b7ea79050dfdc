package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte // the CA certificate, PEM
}

// newTestCA returns a new CA named name.
func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func randSerial(t *testing.T) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A certSpec says what a server certificate covers and when.
type certSpec struct {
	dns                 []string
	ips                 []net.IP
	notBefore, notAfter time.Time // zero: an hour ago, a day from now
}

// loopback is the spec of a certificate for 127.0.0.1.
var loopback = certSpec{ips: []net.IP{net.IPv4(127, 0, 0, 1)}}

// A testPair is a server certificate (PEM) and its key (PEM).
type testPair struct {
	cert, key []byte
	serial    *big.Int
}

// issue returns a new server certificate of spec, and its key.
func (ca *testCA) issue(t *testing.T, spec certSpec) testPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t),
		Subject:      pkix.Name{CommonName: "sumdb test server"},
		DNSNames:     spec.dns,
		IPAddresses:  spec.ips,
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testPair{
		cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		serial: tmpl.SerialNumber,
	}
}

// pool returns a certificate pool of the CA alone.
func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// writePair writes cert and key to their files as a renewal would: each
// to a new file renamed over the old one, the key first.
func writePair(t *testing.T, certFile, keyFile string, cert, key []byte) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
	}{{keyFile, key}, {certFile, cert}} {
		tmp := f.name + ".new"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.name); err != nil {
			t.Fatal(err)
		}
	}
}

// keyBody returns a line of the base64 body of a PEM key, which nothing
// may print.
func keyBody(key []byte) string {
	lines := strings.Split(string(key), "\n")
	return lines[1]
}

// waitLog waits up to 10 seconds for the server's stderr, which reaches
// the test through a pipe, to match the regular expression re, and returns
// the match and its submatches, or nil.
func waitLog(p *sumdbProcess, re string) []string {
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := rx.FindStringSubmatch(p.stderr.String()); m != nil || time.Now().After(deadline) {
			return m
		}
	}
}

// servedSerial connects to addr afresh, verifying the server's certificate
// for serverName with roots, and returns the serial number of the
// certificate served.
func servedSerial(t *testing.T, addr, serverName string, roots *x509.CertPool) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		t.Fatalf("TLS connection to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestServeTLS runs serve with a certificate from files and the real go
// command against it: the go command verifies modules over HTTPS with a
// test CA it trusts, HTTP/2 is spoken, a renewed pair is served to the next
// connection without a restart, a bad pair is refused and the old one kept,
// and the go command refuses, with its own x509 error, a certificate from
// a CA it does not trust and an expired one.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	px := newProxies(t)
	for _, m := range []string{"a", "b", "c"} {
		path := "example.com/tls/" + m
		px.add(t, pkg(path, "v1.0.0", "module "+path+"\n"))
	}
	ca := newTestCA(t, "sumdb test CA")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	tlsDir := t.TempDir()
	certFile, keyFile := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
	first := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, first.cert, first.key)

	srv, err := startSumdb(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--upstream", px.upstreamURL,
		"--tls-cert", certFile, "--tls-key", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	// The certificate covers 127.0.0.1, and so must the URL.
	u, err := url.Parse(srv.url)
	if err != nil || u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.Port() == "" {
		t.Fatalf("GOSUMDB URL %q, want https://127.0.0.1:<port>", srv.url)
	}
	addr := u.Host
	srv.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}

	// The go command trusts the test CA only (SSL_CERT_DIR: none of the
	// system's CAs either).
	trusting := []string{"SSL_CERT_FILE=" + caFile, "SSL_CERT_DIR=" + t.TempDir()}
	user := newGoUser(t, px.goProxyURL)
	user.env = trusting
	mod := newMainModule(t, "example.com/tls/a")
	user.mustRun(mod, srv.gosumdb, "get", "example.com/tls/a@v1.0.0")
	checkGoSum(t, srv, px.upstream, mod, "example.com/tls/a v1.0.0", "example.com/tls/a v1.0.0/go.mod")

	t.Run("http2", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}, ForceAttemptHTTP2: true}}
		resp, err := client.Get(srv.url + "/latest")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Errorf("GET /latest with HTTP/2 allowed: %s %s %q, want 200 over HTTP/2", resp.Proto, resp.Status, body)
		}
	})

	if got := servedSerial(t, addr, "127.0.0.1", ca.pool()); got.Cmp(first.serial) != 0 {
		t.Fatalf("serial %v served, want the first certificate's %v", got, first.serial)
	}
	renewed := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, renewed.cert, renewed.key)
	if got := servedSerial(t, addr, "127.0.0.1", ca.pool()); got.Cmp(renewed.serial) != 0 {
		t.Fatalf("after a renewal, serial %v served, want the renewed certificate's %v", got, renewed.serial)
	}

	// A certificate with the key of another: refused, the renewed pair kept.
	other := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, other.cert, renewed.key)
	if got := servedSerial(t, addr, "127.0.0.1", ca.pool()); got.Cmp(renewed.serial) != 0 {
		t.Fatalf("after a mismatched pair, serial %v served, want the renewed certificate's %v", got, renewed.serial)
	}
	if waitLog(srv, `level=ERROR msg=.*TLS.*does not match`) == nil {
		t.Errorf("no error logged for a key that does not match the certificate; stderr:\n%s", srv.stderr.String())
	}
	for _, k := range [][]byte{first.key, renewed.key, other.key} {
		if strings.Contains(srv.stderr.String(), keyBody(k)) || strings.Contains(srv.stderr.String(), "PRIVATE KEY") {
			t.Errorf("serve logged key material:\n%s", srv.stderr.String())
		}
	}

	// The go command, with a fresh module cache so that it asks for each
	// lookup, must refuse a certificate of a CA it does not trust, with its
	// own error.
	otherCA := newTestCA(t, "another CA")
	untrusted := otherCA.issue(t, loopback)
	writePair(t, certFile, keyFile, untrusted.cert, untrusted.key)
	if got := servedSerial(t, addr, "127.0.0.1", otherCA.pool()); got.Cmp(untrusted.serial) != 0 {
		t.Fatalf("serial %v served, want the other CA's certificate %v", got, untrusted.serial)
	}
	refused := func(path, want string) {
		t.Helper()
		fresh := &goUser{t: t, gopath: user.gopath, gomodcache: t.TempDir(), goproxy: px.goProxyURL, env: trusting}
		dir := newMainModule(t, path)
		out, err := fresh.run(dir, srv.gosumdb, "get", path+"@v1.0.0")
		if err == nil || !strings.Contains(out, want) || !strings.Contains(out, `Get "`+srv.url+"/") {
			t.Errorf("go get %s@v1.0.0: %v, output:\n%s\nwant a failure of a request to %s saying %q", path, err, out, srv.url, want)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "go.sum")); bytes.Contains(data, []byte(path)) {
			t.Errorf("go get %s@v1.0.0 wrote go.sum lines without a verified checksum database:\n%s", path, data)
		}
	}
	refused("example.com/tls/b", "x509: certificate signed by unknown authority")

	// A certificate of the trusted CA that expires while served.
	notAfter := time.Now().Add(3 * time.Second).Truncate(time.Second)
	expiring := ca.issue(t, certSpec{ips: loopback.ips, notAfter: notAfter})
	writePair(t, certFile, keyFile, expiring.cert, expiring.key)
	if got := servedSerial(t, addr, "127.0.0.1", ca.pool()); got.Cmp(expiring.serial) != 0 {
		t.Fatalf("serial %v served, want the expiring certificate's %v", got, expiring.serial)
	}
	time.Sleep(time.Until(notAfter.Add(1500 * time.Millisecond)))
	refused("example.com/tls/c", "x509: certificate has expired or is not yet valid")
}

// TestServeACME runs serve with --acme-host and checks the wiring that
// needs no ACME CA: certificates come from autocert's cache in
// <data-dir>/acme (seeded here, as the manager would have left them), a
// TLS-ALPN-01 hello (ALPN "acme-tls/1" alone) is answered with the token
// certificate, the GOSUMDB line names the host, HTTP/2 is spoken, a name
// outside --acme-host is refused, and the --acme-http listener answers
// HTTP-01 challenges and redirects everything else to https. The directory
// is a loopback address where nothing answers, so that nothing can reach
// a real CA.
func TestServeACME(t *testing.T) {
	t.Parallel()
	const host = "sum.example.test"
	ca := newTestCA(t, "sumdb test ACME CA")
	dataDir := t.TempDir()
	cacheDir := filepath.Join(dataDir, "acme")
	if err := os.Mkdir(cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// autocert's DirCache holds the key and then the chain, under the
	// host name; the TLS-ALPN-01 certificate under host+token; the HTTP-01
	// answer under token+http-01.
	cached := ca.issue(t, certSpec{dns: []string{host}})
	token := ca.issue(t, certSpec{dns: []string{host}})
	for name, data := range map[string][]byte{
		host:                append(bytes.Clone(cached.key), cached.cert...),
		host + "+token":     append(bytes.Clone(token.key), token.cert...),
		"tok3n-abc+http-01": []byte("tok3n-abc.thumbprint"),
	} {
		if err := os.WriteFile(filepath.Join(cacheDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	srv, err := startSumdb(t, "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1",
		"--acme-host", host+",other.example.test", "--acme-email", "ops@example.test",
		"--acme-directory", "https://127.0.0.1:1/directory", "--acme-http", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	u, err := url.Parse(srv.url)
	if err != nil || u.Scheme != "https" || u.Hostname() != host || u.Port() == "" {
		t.Fatalf("GOSUMDB URL %q, want https://%s:<port>", srv.url, host)
	}
	addr := "127.0.0.1:" + u.Port()

	if got := servedSerial(t, addr, host, ca.pool()); got.Cmp(cached.serial) != 0 {
		t.Errorf("serial %v served for %s, want the cached certificate's %v", got, host, cached.serial)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool(), ServerName: host},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	resp, err := client.Get(srv.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /healthz: %s %s, want 200 over HTTP/2", resp.Proto, resp.Status)
	}

	// What a CA's TLS-ALPN-01 validation sends (RFC 8737, section 3).
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool(), ServerName: host, NextProtos: []string{"acme-tls/1"}})
	if err != nil {
		t.Fatalf("TLS-ALPN-01 hello: %v", err)
	}
	state := conn.ConnectionState()
	conn.Close()
	if state.NegotiatedProtocol != "acme-tls/1" || state.PeerCertificates[0].SerialNumber.Cmp(token.serial) != 0 {
		t.Errorf("TLS-ALPN-01 hello: protocol %q, serial %v; want acme-tls/1 and the token certificate's %v",
			state.NegotiatedProtocol, state.PeerCertificates[0].SerialNumber, token.serial)
	}

	// A name outside --acme-host gets no certificate.
	if conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "evil.example.test"}); err == nil {
		conn.Close()
		t.Errorf("TLS connection for evil.example.test succeeded, want a refusal")
	}

	m := waitLog(srv, `acme_http_addr=(\S+)`)
	if m == nil {
		t.Fatalf("serve logged no acme_http_addr; stderr:\n%s", srv.stderr.String())
	}
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(hostHeader, path string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+m[1]+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = hostHeader
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	if code, body, _ := get(host, "/.well-known/acme-challenge/tok3n-abc"); code != http.StatusOK || body != "tok3n-abc.thumbprint" {
		t.Errorf("HTTP-01 challenge: %d %q, want 200 and the key authorization", code, body)
	}
	if code, _, _ := get("evil.example.test", "/.well-known/acme-challenge/tok3n-abc"); code != http.StatusForbidden {
		t.Errorf("HTTP-01 challenge for another host: %d, want 403", code)
	}
	if code, _, h := get(host, "/latest"); code != http.StatusFound || h.Get("Location") != "https://"+host+"/latest" {
		t.Errorf("GET /latest on the HTTP-01 listener: %d to %q, want 302 to https://%s/latest", code, h.Get("Location"), host)
	}
}

// TestCertReloader checks the certificate served from files as they
// change: a renewed pair is served from the next handshake, a bad pair or
// a missing file keeps the pair served before, a bad pair is logged once
// and without key material, and a good pair after it is served.
func TestCertReloader(t *testing.T) {
	ca := newTestCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	serial := func(r *certReloader) *big.Int {
		t.Helper()
		cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil || cert == nil {
			t.Fatalf("GetCertificate() = %v, %v", cert, err)
		}
		return cert.Leaf.SerialNumber
	}

	first := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, first.cert, first.key)
	r, err := newCertReloader(certFile, keyFile, logger, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(r); got.Cmp(first.serial) != 0 {
		t.Fatalf("serial %v, want the first pair's %v", got, first.serial)
	}

	second := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, second.cert, second.key)
	if got := serial(r); got.Cmp(second.serial) != 0 {
		t.Fatalf("after a renewal: serial %v, want the second pair's %v", got, second.serial)
	}

	third := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, third.cert, first.key) // the key of another
	for range 3 {
		if got := serial(r); got.Cmp(second.serial) != 0 {
			t.Fatalf("after a mismatched pair: serial %v, want the second pair's %v", got, second.serial)
		}
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d errors logged for one bad pair read thrice, want 1:\n%s", n, &logs)
	}
	expired := ca.issue(t, certSpec{ips: loopback.ips, notBefore: time.Now().Add(-2 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	writePair(t, certFile, keyFile, expired.cert, expired.key)
	if got := serial(r); got.Cmp(second.serial) != 0 {
		t.Fatalf("after an expired pair: serial %v, want the second pair's %v", got, second.serial)
	}
	if !strings.Contains(logs.String(), "expired on") {
		t.Errorf("no error logged for an expired certificate:\n%s", &logs)
	}

	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if got := serial(r); got.Cmp(second.serial) != 0 {
		t.Fatalf("with the certificate file missing: serial %v, want the second pair's %v", got, second.serial)
	}
	fourth := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, fourth.cert, fourth.key)
	if got := serial(r); got.Cmp(fourth.serial) != 0 {
		t.Fatalf("after a good pair following bad ones: serial %v, want the fourth pair's %v", got, fourth.serial)
	}
	for _, p := range []testPair{first, second, third, expired, fourth} {
		if strings.Contains(logs.String(), keyBody(p.key)) || strings.Contains(logs.String(), "PRIVATE KEY") {
			t.Fatalf("key material logged:\n%s", &logs)
		}
	}

	// Handshakes go on while renewals are written: each gets a whole pair.
	pairs := []testPair{ca.issue(t, loopback), ca.issue(t, loopback), ca.issue(t, loopback)}
	known := map[string]bool{fourth.serial.String(): true}
	for _, p := range pairs {
		known[p.serial.String()] = true
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
				if err != nil || cert == nil || !known[cert.Leaf.SerialNumber.String()] {
					t.Errorf("GetCertificate() during renewals = %v, %v", cert, err)
					return
				}
				if _, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), pemKey(t, cert)); err != nil {
					t.Errorf("GetCertificate() during renewals: %v", err)
					return
				}
			}
		})
	}
	for _, p := range pairs {
		writePair(t, certFile, keyFile, p.cert, p.key)
	}
	wg.Wait()
}

// pemKey returns the private key of cert as PEM.
func pemKey(t *testing.T, cert *tls.Certificate) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Error(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TestCertURLHost checks the host of the printed GOSUMDB URL: one the
// certificate covers, so that the go command can verify it.
func TestCertURLHost(t *testing.T) {
	ca := newTestCA(t, "test CA")
	leaf := func(spec certSpec) *x509.Certificate {
		p := ca.issue(t, spec)
		b, _ := pem.Decode(p.cert)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		spec        certSpec
		keyName     string
		bound       string
		want        string
		wantCovered bool
	}{
		{loopback, "sumdb.localhost", "127.0.0.1:8443", "127.0.0.1:8443", true},
		{certSpec{ips: []net.IP{net.IPv6loopback}}, "sumdb.localhost", "[::1]:8443", "[::1]:8443", true},
		{certSpec{dns: []string{"www.example.com", "sum.example.com"}}, "sum.example.com", "0.0.0.0:443", "sum.example.com", true},
		{certSpec{dns: []string{"*.example.com", "www.example.com"}}, "sumdb.localhost", "[::]:8443", "www.example.com:8443", true},
		{certSpec{dns: []string{"*.example.com"}}, "sum.example.com/sub", "0.0.0.0:8443", "sum.example.com:8443", true},
		{certSpec{dns: []string{"sum.example.com"}, ips: loopback.ips}, "sum.example.com:8443", "127.0.0.1:9443", "sum.example.com:9443", true},
		{certSpec{dns: []string{"sum.example.com"}, ips: []net.IP{net.IPv4(192, 0, 2, 1)}}, "sumdb.localhost", "0.0.0.0:443", "sum.example.com", true},
		{certSpec{ips: []net.IP{net.IPv4(192, 0, 2, 1)}}, "sumdb.localhost", "0.0.0.0:443", "192.0.2.1", true},
		{certSpec{dns: []string{"*.example.com"}}, "sumdb.localhost", "127.0.0.1:8443", "127.0.0.1:8443", false},
	}
	for _, tt := range tests {
		got, covered := certURLHost(leaf(tt.spec), tt.keyName, tt.bound)
		if got != tt.want || covered != tt.wantCovered {
			t.Errorf("certURLHost(%v %v, %q, %q) = %q, %v; want %q, %v", tt.spec.dns, tt.spec.ips, tt.keyName, tt.bound, got, covered, tt.want, tt.wantCovered)
		}
	}
}

// TestNewTLSSetup checks the TLS configuration of each mode: HTTP/2 kept,
// acme-tls/1 offered with ACME only, the ACME cache created with mode
// 0700 in the data directory, and no TLS without a setting.
func TestNewTLSSetup(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	if s, err := newTLSSetup(&ServeConfig{DataDir: t.TempDir()}, logger); s != nil || err != nil {
		t.Errorf("newTLSSetup(no TLS) = %v, %v; want nil, nil", s, err)
	}

	ca := newTestCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	p := ca.issue(t, loopback)
	writePair(t, certFile, keyFile, p.cert, p.key)
	s, err := newTLSSetup(&ServeConfig{DataDir: dir, TLSCert: certFile, TLSKey: keyFile}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"h2", "http/1.1"}; !slices.Equal(s.config.NextProtos, want) || s.challenge != nil {
		t.Errorf("certificate files: NextProtos %q, challenge handler %v; want %q and none", s.config.NextProtos, s.challenge, want)
	}

	dataDir := filepath.Join(t.TempDir(), "data")
	s, err = newTLSSetup(&ServeConfig{DataDir: dataDir, ACMEHosts: []string{"sum.example.com"}, ACMEHTTP: "127.0.0.1:0"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"h2", "http/1.1", "acme-tls/1"}; !slices.Equal(s.config.NextProtos, want) || s.challenge == nil {
		t.Errorf("ACME: NextProtos %q, challenge handler %v; want %q and one", s.config.NextProtos, s.challenge, want)
	}
	fi, err := os.Stat(filepath.Join(dataDir, "acme"))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("ACME cache directory: %v, %v; want a directory of mode 0700", fi, err)
	}
	if host, _ := s.urlHost("sumdb.localhost", "0.0.0.0:443"); host != "sum.example.com" {
		t.Errorf("ACME URL host %q, want sum.example.com", host)
	}
	if host, _ := s.urlHost("sumdb.localhost", "0.0.0.0:8443"); host != "sum.example.com:8443" {
		t.Errorf("ACME URL host %q, want sum.example.com:8443", host)
	}
}
