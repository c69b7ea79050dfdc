package explorer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/sumdb/sumdb/internal/sumdbtest"
)

// chromium returns the Chromium to drive: skipped without one, unless in
// CI, where .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs it (Debian package chromium)")
	}
	t.Skip("chromium is not installed (Debian package chromium); skipping the browser test")
	return ""
}

// TestBrowser drives a real headless Chromium through the explorer: the
// home page, a prefix search, a record, and its proof, downloaded by a
// click and verified. It saves full-page screenshots of the three pages,
// and, with SUMDB_UPDATE_SCREENSHOTS=1, writes them to docs/screenshots.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	paths := append(modules("org", 5), "example.com/other/tool@v0.3.1", "example.com/org/ma@v1.1.0", "example.com/org/mb@v2.0.0+incompatible")
	ev := newEnv(t, Config{}, paths)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests may run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1000, 800),
	)
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The browser lives as long as the context of its first call: start it
	// without the steps' deadline.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	shots := t.TempDir()
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}

	// The home page.
	if err := chromedp.Do(ctx, chromedp.Navigate(ev.srv.URL+"/")); err != nil {
		t.Fatalf("load /: %v", err)
	}
	if h1, size := text("h1"), text("dl.facts dd:nth-of-type(2)"); h1 != sumdbtest.KeyName || size != "8 records" {
		t.Errorf("/ shows h1 %q and size %q, want %q and \"8 records\"", h1, size, sumdbtest.KeyName)
	}
	shot("home")

	// A prefix search, through the form.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("q"), "example.com/org/"),
		chromedp.Click(chromedp.CSS("form.search button:not([name])")),
		chromedp.WaitVisible(chromedp.CSS("table")),
	); err != nil {
		t.Fatalf("search example.com/org/: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tbody tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	link, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("tbody tr:nth-child(6) a"), "href"))
	if err != nil {
		t.Fatal(err)
	}
	if h1 := text("h1"); rows != 7 || link.Value != "/record/6" || h1 != "Modules under example.com/org/" {
		t.Errorf("search example.com/org/ shows %q, %d rows, the 6th linking to %q; want 7, /record/6", h1, rows, link.Value)
	}
	shot("search")

	// The record page of example.com/org/ma@v1.1.0, record 6.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("tbody tr:nth-child(6) a")),
		chromedp.WaitVisible(chromedp.CSS("pre.gosum")),
	); err != nil {
		t.Fatalf("open record 6: %v", err)
	}
	want := sumdbtest.SynthText("example.com/org/ma", "v1.1.0")
	if title, gosum := text("h1"), text("pre.gosum"); title != "Record 6: example.com/org/ma v1.1.0" || strings.TrimSpace(gosum) != strings.TrimSpace(string(want)) {
		t.Errorf("record 6 shows %q and go.sum lines %q, want example.com/org/ma v1.1.0 and %q", title, gosum, want)
	}
	shot("record")

	// The proof link downloads a proof that verifies.
	downloads := t.TempDir()
	on := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &on,
	}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("proof-link"))); err != nil {
		t.Fatalf("follow the proof link: %v", err)
	}
	var guid string
	for e, err := range progress {
		if err != nil {
			t.Fatalf("download the proof: %v", err)
		}
		if e.State == browser.DownloadProgressStateCompleted {
			guid = e.GUID
			break
		}
		if e.State == browser.DownloadProgressStateCanceled {
			t.Fatalf("download the proof: canceled")
		}
	}
	proof, err := os.ReadFile(filepath.Join(downloads, guid))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkProof(proof, ev.db.Key.Verifier, 6, want); err != nil {
		t.Errorf("downloaded proof of record 6: %v\n%s", err, proof)
	}

	for _, name := range []string{"home", "search", "record"} {
		png, err := os.ReadFile(filepath.Join(shots, name+".png"))
		if err != nil || len(png) < 1000 || string(png[1:4]) != "PNG" {
			t.Errorf("screenshot %s: %v, %d bytes, want a PNG", name, err, len(png))
			continue
		}
		if os.Getenv("SUMDB_UPDATE_SCREENSHOTS") == "1" {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "screenshots", name+".png"), png, 0o644); err != nil {
				t.Error(err)
			}
		}
	}
}
