package main

import (
	"strings"
	"testing"
)

// TestConfigErrorsHideMalformedURLCredentials checks the errors of serve's
// settings on URLs that hold credentials but are malformed, as a typo
// makes them ("https//" for "https://"): url.Parse finds no user
// information in them, so masking it masks nothing, and the error must
// not show them some other way (guard.ShownURL names such an entry by its
// position). The GOPROXY case is the go command's own setting, read
// because no upstream is set: the user never typed it to sumdb.
func TestConfigErrorsHideMalformedURLCredentials(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name  string
		args  []string
		proxy string // go env GOPROXY
	}{
		{"go env GOPROXY", nil, "https://proxy.example.com,https//alice:hunter2@corp.example.com"},
		{"go env GOPROXY without a scheme", nil, "alice:hunter2@corp.example.com"},
		{"acme-directory", []string{"--upstream", "https://proxy.example.com", "--acme-host", "sum.example.com", "--acme-directory", "https//alice:hunter2@acme.example.com/dir"}, "off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.args, fixedGoEnv(tt.proxy))
			if err == nil {
				t.Fatalf("loadServeConfig(%q), GOPROXY %q: no error, want one", tt.args, tt.proxy)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("loadServeConfig(%q), GOPROXY %q: error %q shows the password", tt.args, tt.proxy, err)
			}
		})
	}
}
