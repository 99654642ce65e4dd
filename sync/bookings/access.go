package bookings

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// AccessPath prefixes the access page of a booking: AccessPath + token.
const AccessPath = "/access/"

// bookingInfo is what a driver is told about a booking.
type bookingInfo struct {
	Vehicle  string
	Box      string
	Location string
	Key      string
	Slot     int
	From     time.Time
	Until    time.Time
	Link     string
}

// describe gathers the box and key a booking is for.
func (b *Integration) describe(bk Booking) (bookingInfo, error) {
	bi, err := b.o.Store.Box(bk.BoxID)
	if err != nil {
		return bookingInfo{}, err
	}
	info := bookingInfo{Box: cmpOr(bi.Name, bi.ID), Location: bi.Location, Key: bk.KeyID, From: bk.From, Until: bk.Until, Link: bk.AccessLink}
	keys, _, err := b.o.Cloud.Records(bk.BoxID)
	if err != nil {
		return bookingInfo{}, fmt.Errorf("records of box %s: %w", bk.BoxID, err)
	}
	for _, k := range keys {
		if k.ID == bk.KeyID {
			info.Key, info.Slot = cmpOr(k.Name, k.ID), k.Slot
		}
	}
	// Keys are named for their vehicle: the best stand-in when Fleetio's
	// read-back had no vehicle name.
	info.Vehicle = cmpOr(bk.VehicleName, info.Key)
	return info, nil
}

// timeLayout is how times are written into notification data and the
// access page; with Options.Zone, a message reads it back as a time to show
// it in that zone (Integration.when).
const timeLayout = "Mon 2 Jan 2006 15:04 (-07:00)"

// fmtTime shows a time in the offset Fleetio gave it (the account's zone),
// which is the driver's.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(timeLayout)
}

func (i bookingInfo) window() string {
	if i.Until.IsZero() {
		return "from " + fmtTime(i.From)
	}
	return "from " + fmtTime(i.From) + " until " + fmtTime(i.Until)
}

// instructions is the text of the keycafe_access_instructions field. It does
// not hold the PIN: that has its own field.
func (i bookingInfo) instructions() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Your key %q is in SmartBox %s", i.Key, i.Box)
	if i.Location != "" {
		fmt.Fprintf(&sb, " at %s", i.Location)
	}
	if i.Slot > 0 {
		fmt.Fprintf(&sb, ", slot %d", i.Slot)
	}
	fmt.Fprintf(&sb, ". Valid %s. Type your Keycafe access code on the keypad and press #; the slot opens. "+
		"Return the key by holding its fob to the reader. Details: %s", i.window(), i.Link)
	return sb.String()
}

func vehicleName(a fleetio.VehicleAssignment) string {
	if a.Vehicle != nil && a.Vehicle.Name != "" {
		return a.Vehicle.Name
	}
	return fmt.Sprintf("vehicle %d", a.VehicleID)
}

var accessPage = template.Must(template.New("access").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>Your key: {{.Key}}</title></head>
<body>
<h1>Your key: {{.Key}}</h1>
<dl>
<dt>SmartBox</dt><dd id="box">{{.Box}}</dd>
{{if .Location}}<dt>Location</dt><dd id="location">{{.Location}}</dd>{{end}}
{{if .Slot}}<dt>Slot</dt><dd id="slot">{{.Slot}}</dd>{{end}}
<dt>From</dt><dd id="from">{{.FromText}}</dd>
{{if .UntilText}}<dt>Until</dt><dd id="until">{{.UntilText}}</dd>{{end}}
</dl>
{{if .LiveText}}<p id="live">Your code is active on {{.Box}} since {{.LiveText}}.</p>
{{else}}<p id="live">Your code is on its way to {{.Box}}: boxes usually have it within a minute of the booking being made. If the box does not open with it, contact your fleet admin.</p>
{{end}}<h2>How to take the key</h2>
<ol>
<li>At the SmartBox, type the access code you were sent (also in your Fleetio assignment) on the keypad.</li>
<li>Press <kbd>#</kbd>. <kbd>*</kbd> clears a mistake.</li>
<li>The slot's door opens: take the key and close the door.</li>
</ol>
<h2>Returning it</h2>
<p>Hold the key's fob to the reader: its slot opens. Put the key in and close the door.</p>
<p>Too many wrong codes lock the keypad for a while.</p>
</body></html>
`))

// Access returns the handler of GET /access/{token}: the booking's page,
// 404 for a token nobody was given, 410 once the booking has ended.
func (b *Integration) Access() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		// The page names a box and its location: no caching by proxies,
		// no referrer leaking the token to links.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		token, ok := strings.CutPrefix(r.URL.Path, AccessPath)
		// A token is 43 base64url characters; anything else is not one.
		if !ok || len(token) != 43 || strings.ContainsAny(token, "/+=") {
			http.NotFound(w, r)
			return
		}
		bk, found, err := b.o.Store.BookingByToken(token)
		if err != nil {
			b.log.Error("access page", "err", err)
			http.Error(w, "store error", http.StatusInternalServerError)
			return
		}
		if !found {
			http.NotFound(w, r)
			return
		}
		if bk.State != BookingActive || (!bk.Until.IsZero() && !b.o.Now().Before(bk.Until)) {
			http.Error(w, "This booking has ended.", http.StatusGone)
			return
		}
		info, err := b.describe(bk)
		if err != nil {
			b.log.Error("access page", "assignment", bk.AssignmentID, "err", err)
			http.Error(w, "store error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// LiveAt in the booking's zone, like the window's times.
		var live string
		if !bk.LiveAt.IsZero() {
			live = fmtTime(bk.LiveAt.In(bk.From.Location()))
		}
		accessPage.Execute(w, struct {
			bookingInfo
			FromText, UntilText, LiveText string
		}{info, fmtTime(info.From), fmtTime(info.Until), live})
	})
}
