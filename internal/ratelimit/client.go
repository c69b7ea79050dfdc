package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientKey returns the key of r's client for rate limiting: its IP
// address, or for IPv6 its /64 network, which a single subscriber usually
// holds whole. The address is the connection's peer, or with trustProxy the
// last address of the X-Forwarded-For header, the one the proxy in front of
// the server appended (the earlier ones are whatever the client claimed).
// The key is at most 65 bytes long.
func ClientKey(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if key, ok := addrKey(strings.TrimSpace(last)); ok {
				return key
			}
		}
	}
	if key, ok := addrKey(r.RemoteAddr); ok {
		return key
	}
	// Not an address (a handler called without a network connection):
	// one bucket for all such requests, with a key of bounded size that
	// logs can show.
	s := r.RemoteAddr[:min(len(r.RemoteAddr), 64)]
	return "?" + strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e {
			return '?'
		}
		return c
	}, s)
}

// addrKey returns the rate limiting key of an IP address, which may have a
// port.
func addrKey(s string) (string, bool) {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", false
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String(), true
	}
	return netip.PrefixFrom(a, 64).Masked().String(), true
}
