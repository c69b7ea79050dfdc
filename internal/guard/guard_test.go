package guard

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestMaskURLError makes net/http repeat a redirect's URL in its errors, in
// each way it does, and checks that a Client's errors show neither
// the token in its query nor its user information, where a plain
// http.Client's show them, and keep what callers test.
func TestMaskURLError(t *testing.T) {
	t.Parallel()
	const secret = "SeCrEtToKeN"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close() // nothing listens there any more: connection refused
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/refused":
			w.Header().Set("Location", "http://"+secret+":pw@"+gone+"/blob?sig="+secret)
		case "/badlocation":
			w.Header().Set("Location", "http://127.0.0.1:port"+secret+"/blob?sig="+secret)
		case "/loop":
			w.Header().Set("Location", "/loop?sig="+secret)
		case "/slow":
			w.Header().Set("Location", "/hang?sig="+secret)
		case "/hang":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) }) // before srv.Close, which waits for handlers

	for _, tc := range []struct {
		path string
		want func(error) bool // what callers test still holds
	}{
		{"/refused", func(err error) bool { var oerr *net.OpError; return errors.As(err, &oerr) }},
		{"/badlocation", func(err error) bool { return errors.Is(err, errBadLocation) }},
		{"/loop", func(err error) bool { var rerr *RedirectError; return errors.As(err, &rerr) }},
		{"/slow", func(err error) bool { var nerr net.Error; return errors.As(err, &nerr) && nerr.Timeout() }},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			t.Parallel()
			do := func(c interface {
				Do(*http.Request) (*http.Response, error)
			}) error {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET %s succeeded", tc.path)
				}
				return err
			}
			plain := &http.Client{Timeout: 200 * time.Millisecond}
			if err := do(plain); !strings.Contains(err.Error(), secret) {
				t.Fatalf("http.Client error %q does not show the secret: this case tests nothing", err)
			}
			err := do(NewClient(plain))
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Client error %q shows the secret", err)
			}
			if !tc.want(err) {
				t.Errorf("Client error %q (%T) lost what callers test", err, err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	in := "postgres://postgres:s3cretA@127.0.0.1:5432/db?sslmode=disable&password=s3cretB&sslpassword=s3cretC"
	got := RedactURL(in)
	if strings.Contains(got, "s3cret") {
		t.Errorf("RedactURL(%q) = %q, which shows a password", in, got)
	}
	if !strings.Contains(got, "@127.0.0.1:5432/db?") || !strings.Contains(got, "sslmode=disable") {
		t.Errorf("RedactURL(%q) = %q, which lost the host, database or settings", in, got)
	}
}

func TestRedactList(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://proxy.example.com,direct", "https://proxy.example.com,direct"},
		{"https://user:hunter2@proxy.example.com/p|https://token@p2.example.com,off", "https://xxxxx@proxy.example.com/p|https://xxxxx@p2.example.com,off"},
		{"http://[::1:x/", "(unparsable URL)"},
		{"https://p.example.com/?token=s3cret&x=1", "https://p.example.com/?token=xxxxx&x=1"},
		{"https://p.example.com/?a=%zz", "https://p.example.com/?xxxxx"},
	} {
		if got := RedactList(tt.in); got != tt.want {
			t.Errorf("RedactList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
