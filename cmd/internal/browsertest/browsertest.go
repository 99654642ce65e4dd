// Package browsertest starts a real headless Chromium for the simulator's
// browser tests, driven with chromedp. It uses Debian's chromium at
// ChromiumPath (.ci/run installs it) and never downloads a browser. Under
// CI=true a missing chromium fails the test, since CI installs it and a quiet
// skip there would hide that the browser tests never ran; elsewhere the test
// is skipped with the command that installs it.
//
// chromedp v0.23's API is generic, one action per Run:
//
//	ctx := browsertest.New(t)
//	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url)))
//	text, err := chromedp.Run(ctx, chromedp.Text("#pin"))
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/smartbox-oss/smartbox/cmd/internal/syncbuf"
)

// ChromiumPath is where Debian's chromium package puts the browser.
const ChromiumPath = "/usr/bin/chromium"

// The window is the smallest laptop screen the page must be usable at
// (issue 10: 1280x800).
const (
	WindowWidth  = 1280
	WindowHeight = 800
)

// testTimeout bounds one test's browser: a page that never shows what a test
// waits for fails the test in this time instead of hanging until go test's
// own timeout kills every test in the binary.
const testTimeout = 2 * time.Minute

// New starts a headless Chromium (a fresh profile in a temporary directory)
// with one tab, and returns its chromedp context. The browser is stopped and
// its profile removed when the test ends; if the test failed, the browser's
// own output is logged.
func New(t testing.TB) context.Context {
	t.Helper()
	if st, err := os.Stat(ChromiumPath); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browsertest: CI=true but no chromium at %s (apt-get install -y chromium)", ChromiumPath)
		}
		t.Skipf("browsertest: no chromium at %s (apt-get install -y chromium)", ChromiumPath)
	}
	out := &syncbuf.Buffer{} // written from chromedp's goroutines
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		// Root in a container has no user namespaces for the sandbox.
		chromedp.NoSandbox,
		// No update checks or other calls home from a test.
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(WindowWidth, WindowHeight),
		chromedp.CombinedOutput(out),
	)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), testTimeout)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		cancelTimeout()
		if t.Failed() {
			t.Logf("browsertest: chromium's output:\n%s", out.String())
		}
	})
	// Start the browser now, so that one that cannot start fails here and
	// not at the test's first action.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: start chromium: %v\n%s", err, out.String())
	}
	return ctx
}

// clickPoll is how often Click looks for its element.
const clickPoll = 20 * time.Millisecond

// Click clicks the first element the CSS selector sel matches, once there
// is one, it is laid out and it is not disabled, finding and clicking it in
// one step inside the page. chromedp.Click finds the node and clicks it in
// two calls from outside: a page that re-renders in between (a live update
// replacing a table's rows) leaves it clicking a node that is gone ("Could
// not find node with given id").
func Click(sel string) chromedp.Action[chromedp.Void] {
	q, _ := json.Marshal(sel) // a string always marshals
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (!e || e.disabled || e.getClientRects().length === 0) return false;
		e.click();
		return true;
	})()`, q), chromedp.WithPollingInterval(clickPoll))
}
