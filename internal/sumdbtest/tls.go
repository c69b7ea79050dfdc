package sumdbtest

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// ServeTLS serves h over HTTPS on the loopback until the test ends, and
// returns its URL and a PEM file of its certificate, for the SSL_CERT_FILE
// of a client that must trust it (the go command, the sumdb binary). Its
// own clients reach it with Server.Client.
func ServeTLS(t testing.TB, h http.Handler) (srv *httptest.Server, certFile string) {
	t.Helper()
	srv = httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	certFile = filepath.Join(t.TempDir(), "cert.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(certFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, certFile
}
