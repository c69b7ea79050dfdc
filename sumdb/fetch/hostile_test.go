package fetch

import (
	"archive/zip"
	"bytes"
	"cmp"
	"compress/flate"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// zerosDeflated returns a raw DEFLATE stream that inflates to mib MiB of
// zeros, at a ratio of about 1000:1, without compressing them all: the
// compressed form of 1 MiB of zeros whose matches reach back only into
// zeros is repeated.
func zerosDeflated(t *testing.T, mib int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	step := func() []byte {
		start := buf.Len()
		if _, err := zw.Write(zeros); err != nil {
			t.Fatal(err)
		}
		if err := zw.Flush(); err != nil { // ends byte-aligned
			t.Fatal(err)
		}
		return bytes.Clone(buf.Bytes()[start:])
	}
	first, more := step(), step()
	end := buf.Len()
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	final := bytes.Clone(buf.Bytes()[end:])
	out := first
	for range mib - 1 {
		out = append(out, more...)
	}
	return append(out, final...)
}

// bombZip returns a zip holding one file of mib MiB of zeros, deflated,
// whose directory declares the given uncompressed size (-1: the true one).
func bombZip(t *testing.T, prefix string, mib int, declared int64) []byte {
	t.Helper()
	data := zerosDeflated(t, mib)
	size := uint64(mib) << 20
	crc := crc32.NewIEEE()
	zeros := make([]byte, 1<<20)
	for range mib {
		crc.Write(zeros)
	}
	if declared >= 0 {
		size = uint64(declared)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name:               prefix + "zeros.txt",
		Method:             zip.Deflate,
		CRC32:              crc.Sum32(),
		CompressedSize64:   uint64(len(data)),
		UncompressedSize64: size,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestZerosDeflated(t *testing.T) {
	data := zerosDeflated(t, 3)
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(data)))
	if err != nil || len(got) != 3<<20 || bytes.ContainsFunc(got, func(r rune) bool { return r != 0 }) {
		t.Fatalf("zerosDeflated(3) inflates to %d bytes (%v), want 3 MiB of zeros", len(got), err)
	}
	if len(data) > 3<<20/500 {
		t.Errorf("zerosDeflated(3) is %d bytes, want a ratio over 500", len(data))
	}
}

// TestUpstreamAbuse checks that an upstream sending too much, too slowly,
// or zip bombs, costs a fetch at most its limits and fails it quickly,
// with the right kind of error.
func TestUpstreamAbuse(t *testing.T) {
	const path, version = "example.com/m", "v1.0.0"
	prefix := path + "@" + version + "/"
	info := infoJSON(version)
	mod := []byte("module example.com/m\n")
	goodZip := makeZip(t, map[string]string{prefix + "go.mod": string(mod)})

	// endless writes an endless body of b, without Content-Length.
	endless := func(b byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte{b}, 32<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}
	// trickle sends one byte of body every 20ms, forever.
	trickle := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte{'{'}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	static := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { w.Write(b) }
	}
	bigInfo := append([]byte(`{"Version":"v1.0.0","Junk":"`), bytes.Repeat([]byte("a"), 2<<20)...)

	tests := []struct {
		name          string
		info, mod, zp http.Handler // nil: the good file
		cfg           Config
		wantErr       string // prefix
		wantKind      error
	}{
		{name: "huge info", info: static(bigInfo), wantErr: "upstream unavailable: example.com/m@v1.0.0: .info larger than 1048576 bytes", wantKind: ErrUpstream},
		{name: "endless info", info: endless('a'), wantErr: "upstream unavailable: example.com/m@v1.0.0: .info larger than 1048576 bytes", wantKind: ErrUpstream},
		{name: "endless mod", mod: endless('\n'), wantErr: "not found: example.com/m@v1.0.0: go.mod larger than 16777216 bytes", wantKind: ErrNotFound},
		{name: "endless zip", zp: endless('P'), cfg: Config{MaxZipSize: 1 << 20}, wantErr: "not found: example.com/m@v1.0.0: module zip larger than 1048576 bytes", wantKind: ErrNotFound},
		{name: "trickling info", info: http.HandlerFunc(trickle), cfg: Config{Timeout: 300 * time.Millisecond}, wantErr: "upstream unavailable: example.com/m@v1.0.0: timed out", wantKind: context.DeadlineExceeded},
		{name: "trickling zip", zp: http.HandlerFunc(trickle), cfg: Config{Timeout: 300 * time.Millisecond}, wantErr: "upstream unavailable: example.com/m@v1.0.0: timed out", wantKind: context.DeadlineExceeded},
		{
			name:    "redirect loop",
			info:    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, r.URL.Path, http.StatusFound) }),
			wantErr: "upstream unavailable: example.com/m@v1.0.0: proxy redirected .info more than 10 times", wantKind: ErrUpstream,
		},
		{
			// Declares 1 KiB, inflates to 4 GiB: archive/zip stops at the
			// declared size, so hashing reads only a little of it.
			name:    "bomb declared small",
			zp:      static(bombZip(t, prefix, 4096, 1<<10)),
			wantErr: "not found: example.com/m@v1.0.0: invalid module zip: zip: not a valid zip file", wantKind: ErrNotFound,
		},
		{
			name:    "bomb declared empty",
			zp:      static(bombZip(t, prefix, 16, 0)),
			wantErr: "not found: example.com/m@v1.0.0: invalid module zip: ", wantKind: ErrNotFound,
		},
		{
			// Declares what it holds, 600 MiB: over the go command's
			// 500 MiB, refused before anything is inflated.
			name:    "bomb over 500 MiB",
			zp:      static(bombZip(t, prefix, 600, -1)),
			wantErr: "not found: example.com/m@v1.0.0: invalid module zip: total uncompressed size of module contents too large", wantKind: ErrNotFound,
		},
		{
			// Declares what it holds, 64 MiB in a 64 KiB zip: within the
			// go command's limits, but over --max-zip-size, which bounds
			// the expanded size too.
			name:    "bomb over max zip size",
			zp:      static(bombZip(t, prefix, 64, -1)),
			cfg:     Config{MaxZipSize: 1 << 20},
			wantErr: "not found: example.com/m@v1.0.0: module zip expands to more than 1048576 bytes", wantKind: ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var h http.Handler
				switch ext := r.URL.Path[strings.LastIndexByte(r.URL.Path, '.'):]; ext {
				case ".info":
					h = cmp.Or[http.Handler](tt.info, static(info))
				case ".mod":
					h = cmp.Or[http.Handler](tt.mod, static(mod))
				case ".zip":
					h = cmp.Or[http.Handler](tt.zp, static(goodZip))
				default:
					http.NotFound(w, r)
					return
				}
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			cfg := tt.cfg
			cfg.Proxy = srv.URL
			u := newTestUpstream(t, cfg)
			start := time.Now()
			text, err := u.Fetch(t.Context(), path, version)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Fetch took %v", d)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || !errors.Is(err, tt.wantKind) {
				t.Fatalf("Fetch = %q, %v; want an error %q wrapping %v", text, err, tt.wantErr, tt.wantKind)
			}
		})
	}
}
