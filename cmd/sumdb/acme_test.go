package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// buildTool builds a tool of go.mod's tool block into the tests' binary
// directory and returns its file.
func buildTool(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(testBinDir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCommand(t), "build", "-o", out, pkg)
	cmd.Dir = pkgDir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// freePort returns a loopback port free a moment ago, for programs that
// must be told their port before they start.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess starts a helper program, ended when the test ends; its
// output is shown if the test fails.
func startProcess(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(environ(), env...)
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), out.String())
		}
	})
}

// TestServeACMEIssuance gets a real certificate for serve from Pebble,
// Let's Encrypt's ACME test server, over TLS-ALPN-01, on loopback only:
// Pebble resolves the name through pebble-challtestsrv, whose DNS answers
// 127.0.0.1 for every name, and validates by connecting to serve's
// listener with ALPN acme-tls/1. serve reaches Pebble's directory over
// HTTPS with a test CA given in SSL_CERT_FILE.
func TestServeACMEIssuance(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the ACME issuance through Pebble")
	}
	t.Parallel()
	const host = "sum.example.test"
	pebble := buildTool(t, "github.com/letsencrypt/pebble/v2/cmd/pebble")
	challtestsrv := buildTool(t, "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv")

	dnsPort, challMgmtPort, acmePort, acmeMgmtPort, sumdbPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	startProcess(t, nil, challtestsrv,
		"-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-management", fmt.Sprintf("127.0.0.1:%d", challMgmtPort),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "")

	// Pebble's API is HTTPS, with a certificate of a test CA that serve
	// is told to trust.
	ca := newTestCA(t, "sumdb test CA for Pebble")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	api := ca.issue(t, loopback)
	apiCert, apiKey := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	writePair(t, apiCert, apiKey, api.cert, api.key)
	config, err := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", acmePort),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", acmeMgmtPort),
		"certificate":                    apiCert,
		"privateKey":                     apiKey,
		"httpPort":                       1, // no HTTP-01: serve has no --acme-http here
		"tlsPort":                        sumdbPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"profiles":                       map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	configFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(configFile, config, 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, pebble,
		"-config", configFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))

	trustCA := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}
	directory := fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort)
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := trustCA.Get(directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pebble's directory %s did not answer within a minute: %v", directory, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	dataDir := t.TempDir()
	srv, err := startSumdbEnv(t, []string{"SSL_CERT_FILE=" + caFile, "SSL_CERT_DIR=" + t.TempDir()},
		"--data-dir", dataDir, "--listen", "127.0.0.1:"+strconv.Itoa(sumdbPort), "--upstream", "http://127.0.0.1:1",
		"--acme-host", host, "--acme-email", "ops@example.test", "--acme-directory", directory)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	if want := fmt.Sprintf("https://%s:%d", host, sumdbPort); srv.url != want {
		t.Errorf("GOSUMDB URL %q, want %q", srv.url, want)
	}

	// The certificates Pebble issues chain to a root it makes at start.
	resp, err := trustCA.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", acmeMgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("Pebble's root: %s %v", resp.Status, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("Pebble's root is no PEM certificate: %q", rootPEM)
	}

	// The first connection for the name waits for the issuance.
	addr := "127.0.0.1:" + strconv.Itoa(sumdbPort)
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: host},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	resp, err = client.Get(srv.url + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz with a certificate from Pebble: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /healthz: %s %s, want 200 over HTTP/2", resp.Proto, resp.Status)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if err := leaf.VerifyHostname(host); err != nil {
		t.Errorf("certificate served: %v", err)
	}
	t.Logf("served a certificate from Pebble for %v, issued by %q, valid until %v", leaf.DNSNames, leaf.Issuer, leaf.NotAfter)

	// The certificate and its key are in the cache, for the next start.
	fi, err := os.Stat(filepath.Join(dataDir, "acme", host))
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("cached certificate: %v, %v; want a file closed to group and others", fi, err)
	}
}
