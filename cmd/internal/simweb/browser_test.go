package simweb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/browsertest"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// browserWithin bounds each wait on the page: a loaded CI machine starts
// Chromium in seconds.
const browserWithin = 20 * time.Second

// shotsDir is where screenshots go: $SIMWEB_SHOTS if set (kept as test
// artefacts), else the test's temporary directory.
func shotsDir(t *testing.T) string {
	if d := os.Getenv("SIMWEB_SHOTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	_, err := os.Stat(chromiumPath)
	require.NoError(t, err, "the browser test needs Debian's chromium (apt-get install -y chromium; .ci/run installs it)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-background-networking", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser: no timeout on it (see chromedp.Run).
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	return ctx
}

// run runs one action with a bounded context.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, browserWithin)
	defer cancel()
	v, err := chromedp.Run(c, a)
	require.NoError(t, err)
	return v
}

// waitJS waits until the expression is truthy in the page.
func waitJS(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	run(t, ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond)))
}

func wantPress(t *testing.T, d *fakeDepot, keys string) {
	t.Helper()
	select {
	case got := <-d.presses:
		require.Equal(t, keys, got)
	case <-time.After(browserWithin):
		t.Fatalf("no press of %q reached the depot", keys)
	}
}

func waitCall(t *testing.T, d *fakeDepot, call string) {
	t.Helper()
	require.Eventually(t, func() bool { return lastCall(d) == call }, browserWithin, 10*time.Millisecond, "want %q, calls %q", call, d.Calls())
}

func TestBrowser(t *testing.T) {
	d, ids, _, hs := newTestServer(t)
	ctx := newBrowser(t)
	dir := shotsDir(t)

	run(t, ctx, chromedp.EmulateViewport(1280, 800))
	run(t, ctx, chromedp.Navigate(hs.URL))
	waitJS(t, ctx, `document.querySelectorAll('#slots .slot').length === 12`)

	// The keypad: a click, and the keyboard's keys.
	run(t, ctx, browsertest.Click(`#keypad button[data-key="5"]`))
	wantPress(t, d, "5")
	run(t, ctx, chromedp.KeyEvent("7"))
	wantPress(t, d, "7")
	run(t, ctx, chromedp.KeyEvent("\r"))
	wantPress(t, d, "#")

	// The display: dots for what was typed, the latest outcome.
	require.Equal(t, "•••", run(t, ctx, chromedp.Text(chromedp.CSS("#display-dots"))))
	require.Equal(t, "Slot 3 open: take the key", run(t, ctx, chromedp.Text(chromedp.CSS("#display-message"))))
	waitJS(t, ctx, `document.querySelector('.slot[data-slot="3"]').dataset.released === 'true'`)
	waitJS(t, ctx, `document.querySelector('.slot[data-slot="5"]').dataset.jammed === 'true'`)
	waitJS(t, ctx, `document.querySelector('#sync-state').dataset.connected === 'true'`)
	waitJS(t, ctx, `document.querySelector('#events li[data-type="sync_refused"]').classList.contains('security')`)
	waitJS(t, ctx, `document.querySelector('#boxes li[data-box="b2"]').classList.contains('dead')`)

	// Take the key from the released slot.
	run(t, ctx, browsertest.Click(`.slot[data-slot="3"] button.take`))
	waitCall(t, d, "take b1 3")

	// The reader: a key's fob, and a free UID.
	run(t, ctx, chromedp.SetValue(chromedp.CSS("#fob-select"), "0100073404"))
	run(t, ctx, browsertest.Click("#fob-hold"))
	waitCall(t, d, "fob b1 0100073404")

	// A fault.
	run(t, ctx, browsertest.Click("#fault-network"))
	waitCall(t, d, "network b1 true reset")
	run(t, ctx, browsertest.Click("#fault-blackhole"))
	waitCall(t, d, "network b1 true blackhole")
	// Cut as a pulled cable: both buttons restore, the pulled one is marked.
	d.change(func(d *fakeDepot) { d.boxes[0].NetworkCut, d.boxes[0].NetworkMode = true, "blackhole" })
	waitJS(t, ctx, `document.querySelector('#fault-blackhole').dataset.active === 'true' && document.querySelector('#fault-network').dataset.active === 'false'`)
	waitJS(t, ctx, `document.querySelector('#fault-network').textContent === 'Restore network' && document.querySelector('#sync-state dd[data-field="cloud"]').textContent.includes('cable pulled')`)
	run(t, ctx, browsertest.Click("#fault-network"))
	waitCall(t, d, "network b1 false")
	d.change(func(d *fakeDepot) { d.boxes[0].NetworkCut, d.boxes[0].NetworkMode = false, "" })
	waitJS(t, ctx, `document.querySelector('#fault-blackhole').textContent === 'Pull the cable'`)

	// The broker restarting: said in red, and no second restart meanwhile.
	d.change(func(d *fakeDepot) { d.brokerDown = true })
	waitJS(t, ctx, `document.querySelector('#fault-broker').disabled && document.querySelector('#sync-state dd[data-field="broker"]').textContent === 'restarting' && document.querySelector('#sync-state dd[data-field="broker"]').classList.contains('bad')`)
	// A restart that failed: said, and the button is there to try again.
	d.change(func(d *fakeDepot) { d.brokerErr = "the bridge did not come back" })
	waitJS(t, ctx, `!document.querySelector('#fault-broker').disabled && document.querySelector('#sync-state dd[data-field="broker"]').textContent === 'down: the bridge did not come back'`)
	d.change(func(d *fakeDepot) { d.brokerDown, d.brokerErr = false, "" })
	waitJS(t, ctx, `!document.querySelector('#fault-broker').disabled && document.querySelector('#sync-state dd[data-field="broker"]').textContent === 'up'`)

	// A long inbox: the newest are shown, the rest counted.
	var inbox []depot.Message
	d.change(func(d *fakeDepot) {
		inbox = d.inbox
		for i := range MaxInboxShown {
			d.inbox = append(d.inbox, depot.Message{At: time.Now(), Channel: "sms", To: fmt.Sprintf("+4470%04d", i), Body: "filler"})
		}
	})
	waitJS(t, ctx, `document.querySelector('#inbox-older').textContent === '1 older not shown' && !document.querySelector('#inbox-older').hidden`)
	d.change(func(d *fakeDepot) { d.inbox = inbox })
	waitJS(t, ctx, `document.querySelector('#inbox-older').hidden`)

	// The inbox: the PIN stands out, the link is a link; the mail's markup is text.
	require.Equal(t, "482913", run(t, ctx, chromedp.Text(chromedp.CSS("#inbox .message .pin"))))
	waitJS(t, ctx, `document.querySelector('#inbox .message a.link').href === 'https://bridge.example/a/tok'`)
	waitJS(t, ctx, `document.querySelector('#inbox .message .body').textContent.includes('<b>not bold</b>') && !document.querySelector('#inbox b')`)
	// A driver named <script>...: text in an option, never a script.
	waitJS(t, ctx, `[...document.querySelectorAll('#assign-form option')].some(o => o.textContent.includes('<script>')) && document.scripts.length === 1`)

	// Live: an event from the depot shows without a reload.
	d.change(func(d *fakeDepot) {
		d.events["b1"] = append(d.events["b1"], box.Event{Seq: 4, Time: time.Now(), Type: box.EventKeyTaken, Slot: 3, KeyID: "k3"})
	})
	waitJS(t, ctx, `document.querySelector('#events li[data-type="key_taken"]') !== null`)

	// Fleetio: create an assignment in the form; its fields fill in live.
	run(t, ctx, chromedp.SetValue(chromedp.CSS(`#assign-form select[name="vehicle"]`), fmt.Sprint(ids.van)))
	run(t, ctx, chromedp.SetValue(chromedp.CSS(`#assign-form select[name="contact"]`), fmt.Sprint(ids.ada)))
	run(t, ctx, browsertest.Click(`#assign-form button[type="submit"]`))
	require.Eventually(t, func() bool { return len(d.fleet.Assignments()) == 1 }, browserWithin, 10*time.Millisecond)
	a := d.fleet.Assignments()[0]
	require.Equal(t, ids.van, a.VehicleID)
	require.Equal(t, ids.ada, a.ContactID)
	d.change(nil) // the depot's Changed follows Fleetio's
	row := fmt.Sprintf(`#assignments tr[data-id="%d"]`, a.ID)
	waitJS(t, ctx, `document.querySelector('`+row+` .field-code')?.textContent === '-'`)
	_, err := d.fleet.UpdateAssignment(a.ID, func(a *fleetio.VehicleAssignment) {
		a.CustomFields[fleetio.FieldAccessCode] = "482913"
		a.CustomFields[fleetio.FieldAccessLink] = "https://bridge.example/a/tok"
		a.CustomFields[fleetio.FieldAccessInstructions] = "Type the code, then #"
	})
	require.NoError(t, err)
	d.change(nil)
	waitJS(t, ctx, `document.querySelector('`+row+` .field-code').textContent === '482913'`)
	waitJS(t, ctx, `document.querySelector('`+row+` .field-link a').href === 'https://bridge.example/a/tok'`)

	// Change the driver and open the window; end it; delete it.
	run(t, ctx, browsertest.Click(row+" button.edit"))
	waitJS(t, ctx, `!document.querySelector('#assign-edit').hidden`)
	run(t, ctx, chromedp.SetValue(chromedp.CSS(`#assign-edit select[name="contact"]`), fmt.Sprint(ids.bob)))
	run(t, ctx, browsertest.Click(`#assign-edit input[name="open"]`))
	run(t, ctx, browsertest.Click(`#assign-edit button[type="submit"]`))
	require.Eventually(t, func() bool {
		a, _ := d.fleet.Assignment(a.ID)
		return a.ContactID == ids.bob && a.EndedAt == nil && a.StartedAt.Equal(fixedNow)
	}, browserWithin, 10*time.Millisecond)
	d.change(nil)
	waitJS(t, ctx, `document.querySelector('#assign-edit').hidden`)
	run(t, ctx, browsertest.Click(row+" button.end"))
	require.Eventually(t, func() bool {
		a, _ := d.fleet.Assignment(a.ID)
		return a.EndedAt != nil && a.EndedAt.Equal(fixedNow)
	}, browserWithin, 10*time.Millisecond)
	d.change(nil)
	run(t, ctx, browsertest.Click(row+" button.delete"))
	require.Eventually(t, func() bool { return len(d.fleet.Assignments()) == 0 }, browserWithin, 10*time.Millisecond)
	d.change(nil)
	waitJS(t, ctx, `document.querySelector('`+row+`') === null`)

	// One left for the screenshots, its fields filled.
	_, err = d.fleet.CreateAssignment(fleetio.VehicleAssignment{VehicleID: ids.van, ContactID: ids.ada, StartedAt: time.Now(),
		CustomFields: map[string]any{fleetio.FieldAccessCode: "482913", fleetio.FieldAccessLink: "https://bridge.example/a/tok",
			fleetio.FieldAccessInstructions: "Type the code, then #"}})
	require.NoError(t, err)
	d.change(nil)
	waitJS(t, ctx, `document.querySelectorAll('#assignments tr[data-id]').length === 1`)

	// Prompt: create the booking.
	run(t, ctx, browsertest.Click(`#reservations tr[data-id="99"] button.book`))
	waitCall(t, d, "book 99")

	// A dead box: open it, see why, power it on.
	run(t, ctx, browsertest.Click(`#boxes li[data-box="b2"]`))
	waitJS(t, ctx, `!document.querySelector('#dead').hidden && document.querySelector('#dead-exit').textContent === 'Box not running: exit status 1: boom'`)
	// Nothing to type, take or read on a dead box; power-on stays.
	waitJS(t, ctx, `[...document.querySelectorAll('#keypad button')].every((b) => b.disabled) && document.querySelectorAll('#keypad button').length === 12`)
	waitJS(t, ctx, `[...document.querySelectorAll('#reader button, #reader input, #reader select')].every((b) => b.disabled)`)
	waitJS(t, ctx, `!document.querySelector('#power-on').disabled && !document.querySelector('#fault-power').disabled && document.querySelector('#fault-jam').disabled`)
	waitJS(t, ctx, `['front', 'slots-panel', 'sync-panel'].every((id) => document.getElementById(id).dataset.down === 'true')`)
	run(t, ctx, browsertest.Click("#power-on"))
	waitCall(t, d, "power b2 true")
	// Back to b1 from the keyboard: focus its entry, Enter opens it, and
	// the Enter is not typed on the keypad (the next press the depot gets
	// is the click after it).
	for drained := false; !drained; {
		select {
		case <-d.presses:
		default:
			drained = true
		}
	}
	run(t, ctx, chromedp.Focus(chromedp.CSS(`#boxes li[data-box="b1"]`)))
	run(t, ctx, chromedp.KeyEvent("\r"))
	waitJS(t, ctx, `document.querySelector('#dead').hidden && document.querySelector('#boxes li[data-box="b1"]').dataset.selected === 'true'`)
	run(t, ctx, browsertest.Click(`#keypad button[data-key="1"]`))
	wantPress(t, d, "1")
	waitJS(t, ctx, `![...document.querySelectorAll('#keypad button')].some((b) => b.disabled) && document.querySelector('#front').dataset.down === 'false'`)

	top := chromedp.Evaluate[chromedp.Void]("window.scrollTo(0, 0)")
	run(t, ctx, top)
	shot := run(t, ctx, chromedp.CaptureScreenshot())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sim-1280x800.png"), shot, 0o644))
	full := run(t, ctx, chromedp.FullScreenshot(100))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sim-1280-full.png"), full, 0o644))

	// A phone: one column, nothing wider than the screen.
	run(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(1)))
	waitJS(t, ctx, `getComputedStyle(document.querySelector('.grid')).gridTemplateColumns.split(' ').length === 1`)
	waitJS(t, ctx, `document.documentElement.scrollWidth <= 390`)
	run(t, ctx, top)
	shot = run(t, ctx, chromedp.CaptureScreenshot())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sim-390x844.png"), shot, 0o644))
	full = run(t, ctx, chromedp.FullScreenshot(100))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sim-390-full.png"), full, 0o644))
	t.Logf("screenshots in %s", dir)
}
