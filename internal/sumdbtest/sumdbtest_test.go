package sumdbtest

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/sumdb/sumdb/internal/modproxy"
	"github.com/sumdb/sumdb/sumdb"
)

// TestManyFirstLookups checks that a database's clients may look up more
// module versions new to the log than a server's per-client burst: every
// client of a test is on loopback, one address to the limit, and a load
// test fetches thousands of versions a second.
func TestManyFirstLookups(t *testing.T) {
	db := MustStart(t, Options{})
	n := sumdb.DefaultFetchBurst + 200
	for i := range n {
		path := fmt.Sprintf("example.com/many/m%d", i)
		db.Add(modproxy.Module{Path: path, Version: "v1.0.0", Files: map[string]string{"go.mod": "module " + path + "\n"}})
	}
	statuses := make(map[string]int) // count by status line
	var mu sync.Mutex
	next := make(chan int)
	var g sync.WaitGroup
	for range 8 {
		g.Go(func() {
			for i := range next {
				status := "error"
				resp, err := http.Get(fmt.Sprintf("%s/lookup/example.com/many/m%d@v1.0.0", db.URL, i))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.Status
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	g.Wait()
	if statuses["200 OK"] != n {
		t.Errorf("%d first lookups from one client answered %v, want all 200 OK", n, statuses)
	}
}
