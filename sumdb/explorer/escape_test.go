package explorer

import (
	"encoding/json"
	"encoding/xml"
	"net/url"
	"strings"
	"testing"
)

// TestReflectedQueryEscaped checks that a hostile query is escaped in the
// HTML search page, its JSON twin and the feed, and that no protocol or
// health path is an explorer path.
func TestReflectedQueryEscaped(t *testing.T) {
	ev := newEnv(t, Config{}, modules("org", 2))
	for _, q := range []string{`a"><script>x</script>`, `a'&lt;<b>`, "a</title><x", "a]]><x"} {
		t.Run(q, func(t *testing.T) {
			enc := url.QueryEscape(q)
			_, html := ev.get(t, "/search?q="+enc, "")
			for _, bad := range []string{"<script", "<b>", "<x", `a">`} {
				if strings.Contains(html, bad) {
					t.Errorf("GET /search?q=%s: HTML holds %q", enc, bad)
				}
			}
			_, js := ev.get(t, "/search?q="+enc+"&format=json", "")
			var v struct{ Query string }
			if err := json.Unmarshal([]byte(js), &v); err != nil || v.Query != q || strings.Contains(js, "<") {
				t.Errorf("GET /search?q=%s JSON = %v, %q: %s", enc, err, v.Query, js)
			}
			_, feed := ev.get(t, "/feed?module="+enc, "")
			var f atomFeed
			if err := xml.Unmarshal([]byte(feed), &f); err != nil || !strings.HasSuffix(f.Title, q) {
				t.Errorf("GET /feed?module=%s = %v, title %q", enc, err, f.Title)
			}
		})
	}
	for _, p := range []string{"/latest", "/lookup/x@v1", "/tile/8/0/000", "/tile/8/data/000", "/sumdb/x/latest", "/sumdb/x/supported", "/healthz", "/readyz", "/metrics", "//", "/search/", "/record", "/feed/", "/static"} {
		if IsExplorerPath(p) {
			t.Errorf("IsExplorerPath(%q) = true, want false", p)
		}
	}
}
