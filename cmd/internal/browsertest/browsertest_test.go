package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/browsertest"
)

// TestReadsPage opens a page served by the test, runs its script, and reads
// what the script wrote: the browser, chromedp and the loopback path the
// simulator's page tests take all work.
func TestReadsPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>SmartBox</title>
<p id="pin">waiting</p><button id="go" onclick="document.getElementById('pin').textContent='PIN 482913'">go</button>
<script>document.getElementById('go').dataset.ready = window.innerWidth + 'x' + window.innerHeight</script>`)
	}))
	t.Cleanup(srv.Close)

	ctx := browsertest.New(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL)))
	title, err := chromedp.Run(ctx, chromedp.Title())
	require.NoError(t, err)
	require.Equal(t, "SmartBox", title)

	require.NoError(t, chromedp.Do(ctx, chromedp.Click("#go")))
	text, err := chromedp.Run(ctx, chromedp.Text("#pin"))
	require.NoError(t, err)
	require.Equal(t, "PIN 482913", text)

	size, err := chromedp.Run(ctx, chromedp.Evaluate[int]("window.outerWidth"))
	require.NoError(t, err)
	require.Equal(t, browsertest.WindowWidth, size)
}
