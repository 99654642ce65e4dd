package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/browsertest"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot/depottest"
	"github.com/smartbox-oss/smartbox/cmd/internal/simweb"
)

// Bounds of the browser test.
const (
	// stepWithin bounds one step on the page: a booking goes from Fleetio's
	// webhook through the bridge to the box, and a box whose network comes
	// back reconnects within its 30 s back-off cap (sync/link).
	stepWithin = 60 * time.Second
	// pollEvery is how often a condition on the page is checked.
	pollEvery = 50 * time.Millisecond
	// assignmentLength is the window of the assignment the test creates.
	assignmentLength = 4 * time.Hour
)

// The story's people, vehicles and slots, as seeded by the depot (box 1).
const (
	graceName  = "Grace Hopper"
	graceEmail = "grace@depot.example"
	graceCar   = "Car 3"
	graceSlot  = 3 // Car 3's key
	adaEmail   = "ada@depot.example"
	adaName    = "Ada Lovelace"
	adaSlot    = 1 // Van 7's key, her seeded booking
)

// shotsDir is where screenshots are kept: $SIM_SHOTS if set, else the
// test's artefact directory (kept with go test -artifacts).
func shotsDir(t *testing.T) string {
	if d := os.Getenv("SIM_SHOTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755), "making $SIM_SHOTS")
		return d
	}
	return t.ArtifactDir()
}

// step runs one action on the page, bounded by stepWithin.
func step[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepWithin)
	defer cancel()
	v, err := chromedp.Run(c, a)
	require.NoError(t, err, what)
	return v
}

// waitFor waits until the JavaScript expression is truthy on the page and
// returns its value; the step's context bounds the wait, not Poll's own
// 30 s default.
func waitFor[T any](t *testing.T, ctx context.Context, what, expr string) T {
	t.Helper()
	return step(t, ctx, what, chromedp.Poll[T](expr,
		chromedp.WithPollingInterval(pollEvery), chromedp.WithPollingTimeout(0)))
}

// wait waits until the selector matches an element in the page.
func wait(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	step(t, ctx, what, chromedp.WaitReady(chromedp.CSS(sel)))
}

// click clicks the element the selector matches, once it is shown
// (browsertest.Click: never a node a re-render replaced).
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	step(t, ctx, "clicking "+sel, browsertest.Click(sel))
}

// typePIN clicks the PIN on the keypad, then #.
func typePIN(t *testing.T, ctx context.Context, pin string) {
	t.Helper()
	for _, k := range pin + "#" {
		click(t, ctx, fmt.Sprintf(`#keypad button[data-key=%q]`, string(k)))
	}
}

// pinFor waits for a message to the address with a PIN in the inbox, and
// returns the PIN.
func pinFor(t *testing.T, ctx context.Context, to string) string {
	t.Helper()
	pin := waitFor[string](t, ctx, "the PIN sent to "+to, fmt.Sprintf(`(() => {
		const m = [...document.querySelectorAll('#inbox .message')].find((m) =>
			(m.querySelector('.to')?.textContent || '').includes(%q) && m.querySelector('.pin'));
		return m ? m.querySelector('.pin').textContent : '';
	})()`, to))
	require.Regexp(t, `^\d{6}$`, pin)
	return pin
}

// outbox is the box's outbox count as the sync panel shows it.
const outbox = `parseInt(document.querySelector('#sync-state dd[data-field="outbox"]')?.textContent ?? '', 10)`

// openPage starts a depot with one box (before, if not nil, acts on it
// before the page opens), serves its page and opens it in a browser at
// the reference size.
func openPage(t *testing.T, before func(*depot.Depot)) context.Context {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := depot.Start(t.Context(), depot.Options{Dir: t.TempDir(), Boxes: 1,
		Smartboxd: depottest.Smartboxd(t), Logger: log})
	require.NoError(t, err, "starting the depot")
	t.Cleanup(func() { require.NoError(t, d.Close(), "closing the depot") })
	if before != nil {
		before(d)
	}
	page := simweb.New(d, simweb.Options{Logger: log})
	hs := httptest.NewServer(page)
	t.Cleanup(hs.Close)
	// Before hs.Close, which waits for the page's open streams.
	t.Cleanup(func() { require.NoError(t, page.Close()) })
	// After the depot: browsertest bounds the browser's whole life.
	ctx := browsertest.New(t)
	step(t, ctx, "sizing the viewport", chromedp.EmulateViewport(browsertest.WindowWidth, browsertest.WindowHeight))
	step(t, ctx, "opening the page", chromedp.Navigate(hs.URL))
	return ctx
}

// TestBrowser is issue 10's story in a real browser on a real depot: a fleet
// manager assigns Car 3 to Grace in the Fleetio panel, the bridge books it
// and mails her the PIN, she types it on the keypad and takes the key; the
// box's network is cut, Ada's PIN still opens her slot, and the event
// reaches the bridge once the network is back.
func TestBrowser(t *testing.T) {
	ctx := openPage(t, nil)
	dir := shotsDir(t)

	wait(t, ctx, "box 1 listed", `#boxes li[data-box="box-1"]`)
	wait(t, ctx, "the box connected", `#sync-state[data-connected="true"]`)

	// Ada's seeded booking is made first: her PIN is the offline one below.
	adaPIN := pinFor(t, ctx, adaEmail)

	// The fleet manager assigns Car 3 to Grace, from now for four hours.
	form := `#assign-form`
	vehicle := waitFor[string](t, ctx, "Car 3 in the vehicle list", fmt.Sprintf(
		`[...document.querySelectorAll('%s select[name="vehicle"] option')].find((o) => o.textContent === %q)?.value ?? ''`, form, graceCar))
	contact := waitFor[string](t, ctx, "Grace in the driver list", fmt.Sprintf(
		`[...document.querySelectorAll('%s select[name="contact"] option')].find((o) => o.textContent === %q)?.value ?? ''`, form, graceName))
	// The page's own local-time format for its datetime-local inputs.
	start := step(t, ctx, "now as a form time", chromedp.Evaluate[string](`localInput(new Date())`))
	end := step(t, ctx, "the end as a form time", chromedp.Evaluate[string](
		fmt.Sprintf(`localInput(new Date(Date.now() + %d))`, assignmentLength.Milliseconds())))
	step(t, ctx, "choosing the vehicle", chromedp.SetValue(chromedp.CSS(form+` select[name="vehicle"]`), vehicle))
	step(t, ctx, "choosing the driver", chromedp.SetValue(chromedp.CSS(form+` select[name="contact"]`), contact))
	step(t, ctx, "setting the start", chromedp.SetValue(chromedp.CSS(form+` input[name="start"]`), start))
	step(t, ctx, "setting the end", chromedp.SetValue(chromedp.CSS(form+` input[name="end"]`), end))
	click(t, ctx, form+` button[type="submit"]`)

	// The bridge books it and writes the code back to the assignment.
	id := waitFor[string](t, ctx, "Grace's assignment listed", fmt.Sprintf(`[...document.querySelectorAll('#assignments tr[data-id]')]
		.find((r) => r.textContent.includes(%q) && r.textContent.includes(%q))?.dataset.id ?? ''`, graceName, graceCar))
	row := fmt.Sprintf(`#assignments tr[data-id=%q]`, id)
	code := waitFor[string](t, ctx, "the code written back to Fleetio", fmt.Sprintf(
		`(() => { const c = document.querySelector('%s .field-code')?.textContent ?? '-'; return c === '-' ? '' : c; })()`, row))

	// Grace reads her PIN in her mail: the code Fleetio shows.
	pin := pinFor(t, ctx, graceEmail)
	require.Equal(t, code, pin, "the assignment's code is the PIN Grace was sent")

	// She types it; Car 3's slot opens; she takes the key.
	typePIN(t, ctx, pin)
	released := fmt.Sprintf(`.slot[data-slot="%d"][data-released="true"]`, graceSlot)
	wait(t, ctx, "Car 3's slot released", released)
	click(t, ctx, released+` button.take`)
	wait(t, ctx, "key_taken in the event stream", `#events li[data-type="key_taken"]`)
	wait(t, ctx, "the slot empty", fmt.Sprintf(`.slot[data-slot="%d"][data-key-present="false"]`, graceSlot))

	// The assignment's three custom fields are filled.
	for _, f := range []string{"field-code", "field-link", "field-instructions"} {
		waitFor[bool](t, ctx, f+" filled", fmt.Sprintf(
			`(() => { const v = document.querySelector('%s .%s')?.textContent ?? '-'; return v !== '' && v !== '-'; })()`, row, f))
	}
	waitFor[bool](t, ctx, "the access link a link", fmt.Sprintf(
		`/^https?:\/\//.test(document.querySelector('%s .field-link a')?.href ?? '')`, row))

	step(t, ctx, "scrolling to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	shot := step(t, ctx, "the screenshot", chromedp.CaptureScreenshot())
	shotPath := filepath.Join(dir, "sim-key-taken-1280x800.png")
	require.NoError(t, os.WriteFile(shotPath, shot, 0o644), "writing the screenshot")
	full := step(t, ctx, "the full-page screenshot", chromedp.FullScreenshot(100))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sim-key-taken-full.png"), full, 0o644), "writing the screenshot")

	// The network is cut: the box says so, and works on.
	click(t, ctx, `#fault-network[data-cut="false"]`)
	wait(t, ctx, "the network cut", `#fault-network[data-cut="true"]`)
	wait(t, ctx, "the box offline", `#sync-state[data-connected="false"]`)

	// Ada's PIN opens Van 7's slot with no cloud: the event waits in the
	// outbox.
	typePIN(t, ctx, adaPIN)
	waitFor[bool](t, ctx, "Van 7's slot released while offline", fmt.Sprintf(
		`document.querySelector('.slot[data-slot="%d"]')?.dataset.released === 'true' &&
		document.querySelector('#sync-state').dataset.connected === 'false'`, adaSlot))
	waiting := waitFor[float64](t, ctx, "the release in the outbox while offline", fmt.Sprintf(
		`document.querySelector('#sync-state').dataset.connected === 'false' && %s > 0 && %s`, outbox, outbox))
	t.Logf("outbox while offline: %v event(s)", waiting)

	// The network comes back: the outbox drains, and the release reaches
	// the bridge, on Ada's booking.
	click(t, ctx, `#fault-network[data-cut="true"]`)
	wait(t, ctx, "the network restored", `#fault-network[data-cut="false"]`)
	wait(t, ctx, "the box online", `#sync-state[data-connected="true"]`)
	waitFor[bool](t, ctx, "the outbox drained", outbox+` === 0`)
	waitFor[bool](t, ctx, "the release at the bridge, on Ada's booking", fmt.Sprintf(
		`[...document.querySelectorAll('#bookings tr[data-grant]')].some((r) =>
			r.textContent.includes(%q) && r.querySelector('.chip[data-type="slot_released"]'))`, adaName))

	t.Logf("screenshots in %s (%s)", dir, filepath.Base(shotPath))
}

// TestBrowserSelftest: the page's Self-test button runs the real
// smartboxctl selftest on a real box with slot 3's latch jammed and slot
// 5's sensor dead, and shows its table: those two rows fail, the verdict
// says FAILED with exit status 1.
func TestBrowserSelftest(t *testing.T) {
	ctx := openPage(t, func(d *depot.Depot) {
		yes := true
		require.NoError(t, d.SetSlotFault(t.Context(), "box-1", 3, boxsocket.SlotFault{Jammed: &yes}))
		require.NoError(t, d.SetSlotFault(t.Context(), "box-1", 5, boxsocket.SlotFault{SensorDead: &yes}))
	})
	wait(t, ctx, "the box connected", `#sync-state[data-connected="true"]`)
	click(t, ctx, `#selftest`)
	verdict := waitFor[string](t, ctx, "the self-test's verdict", `(() => {
		const v = document.querySelector('#selftest-verdict').textContent;
		return v.includes('exit status') ? v : ''; })()`)
	require.Contains(t, verdict, "FAILED (exit status 1)")
	failed := step(t, ctx, "the failed rows", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#selftest-rows tr[data-result="fail"]')].map((r) => r.children[1].textContent)`))
	require.ElementsMatch(t, []string{"slot 3 lock", "slot 5 sensor"}, failed)
	shot := step(t, ctx, "the screenshot", chromedp.FullScreenshot(100))
	require.NoError(t, os.WriteFile(filepath.Join(shotsDir(t), "sim-selftest-full.png"), shot, 0o644), "writing the screenshot")
}
