package ratelimit

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientKey(t *testing.T) {
	tests := []struct {
		remote string
		xff    []string
		trust  bool
		want   string
	}{
		{"192.0.2.1:1234", nil, false, "192.0.2.1"},
		{"192.0.2.1:1234", []string{"198.51.100.7"}, false, "192.0.2.1"},
		{"192.0.2.1:1234", []string{"198.51.100.7"}, true, "198.51.100.7"},
		{"192.0.2.1:1234", []string{"203.0.113.9, 198.51.100.7"}, true, "198.51.100.7"},
		{"192.0.2.1:1234", []string{"203.0.113.9", "198.51.100.7 "}, true, "198.51.100.7"},
		{"192.0.2.1:1234", []string{"198.51.100.7:443"}, true, "198.51.100.7"},
		{"192.0.2.1:1234", []string{"[2001:db8::1]:443"}, true, "2001:db8::/64"},
		{"192.0.2.1:1234", []string{"garbage"}, true, "192.0.2.1"},
		{"192.0.2.1:1234", []string{""}, true, "192.0.2.1"},
		{"192.0.2.1:1234", []string{"198.51.100.7, "}, true, "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:1234", nil, false, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1234", nil, false, "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1234", nil, false, "fe80::/64"},
		{"[::ffff:192.0.2.1]:1234", nil, false, "192.0.2.1"},
		{"192.0.2.1", nil, false, "192.0.2.1"},
		{"pipe", nil, false, "?pipe"},
		{"", nil, false, "?"},
		{strings.Repeat("x", 1000), nil, false, "?" + strings.Repeat("x", 64)},
		{"é\x00\xff", nil, false, "????"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/lookup/example.com/m@v1.0.0", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ClientKey(r, tt.trust); got != tt.want {
			t.Errorf("ClientKey(RemoteAddr %q, X-Forwarded-For %q, trust %v) = %q, want %q", tt.remote, tt.xff, tt.trust, got, tt.want)
		}
	}
}

// FuzzClientKey checks that any peer address and X-Forwarded-For header
// give a short key, which ignores the header unless it is trusted.
func FuzzClientKey(f *testing.F) {
	for _, s := range []struct{ remote, xff string }{
		{"192.0.2.1:1234", "198.51.100.7"},
		{"[2001:db8::1]:1", "203.0.113.9, [2001:db8::2]:443"},
		{"pipe", "garbage"},
		{"[fe80::1%eth0]:1234", ""},
	} {
		f.Add(s.remote, s.xff, true)
	}
	f.Fuzz(func(t *testing.T, remote, xff string, trust bool) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		key := ClientKey(r, trust)
		if key == "" || len(key) > 65 {
			t.Fatalf("ClientKey(%q, %q, %v) = %q, want 1 to 65 bytes", remote, xff, trust, key)
		}
		r.Header.Del("X-Forwarded-For")
		if direct := ClientKey(r, trust); !trust && direct != key {
			t.Fatalf("ClientKey(%q, %q, false) = %q, but %q without the header", remote, xff, key, direct)
		}
	})
}
