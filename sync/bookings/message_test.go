package bookings_test

import (
	"fmt"
	"testing"
	"time"
	_ "time/tzdata" // America/Chicago on a host without a zone database

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// render is what the built-in templates make of a recorded message.
func render(t *testing.T, n note, m notify.Method) string {
	t.Helper()
	tpl, err := notify.LoadTemplates("")
	require.NoError(t, err)
	r, err := tpl.Render(n.msg.Kind, m, n.msg.To, n.msg.Data)
	require.NoError(t, err)
	return r.Body
}

// With Options.Zone the driver reads the booking's times in that zone, and
// a booking without an end reads "until further notice".
func TestMessageTimesInZone(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	require.NoError(t, err)
	e := newEnv(t, envOpts{zone: chicago})
	from := e.clock.Now().Add(time.Hour).Truncate(time.Minute)
	a := e.assign(t, e.van, e.ada, from, time.Time{})
	e.settle(t)
	created := e.notes.of(notify.KindBookingCreated)
	require.Len(t, created, 1)
	require.Equal(t, "America/Chicago", created[0].msg.Data[notify.DataTimeZone])
	got, _ := e.f.Assignment(a.ID)
	want := fmt.Sprintf("Van 7: key %q in SmartBox Depot North. PIN %s, %s to further notice. Type the PIN then #. %s",
		"Van 7", field(got, fleetio.FieldAccessCode), from.In(chicago).Format("Mon 2 Jan 2006 15:04 MST"),
		field(got, fleetio.FieldAccessLink))
	require.Equal(t, want, render(t, created[0], notify.MethodSMS))
}

// Without a zone the times read as the integration wrote them (the offset
// Fleetio sent); Options.AdminLink ends the admin's Prompt message.
func TestMessagePromptAdminLink(t *testing.T) {
	e := newEnv(t, envOpts{adminLink: func(id string) string { return "smartbox-bridge fleetio book " + id }})
	require.NoError(t, e.store.PutLink(bookings.Link{VehicleID: e.van.ID, BoxID: boxID, KeyID: keyID, Mode: bookings.ModePrompt}))
	from := e.clock.Now().Add(time.Hour).Truncate(time.Minute)
	until := from.Add(2 * time.Hour)
	a := e.assign(t, e.van, e.ada, from, until)
	e.settle(t)
	told := e.notes.of(notify.KindPromptReservation)
	require.Len(t, told, 1)
	require.Equal(t, "admin@example.com", told[0].to.Email)
	got, _ := e.f.Assignment(a.ID)
	layout := "Mon 2 Jan 2006 15:04 (-07:00)"
	want := fmt.Sprintf("Reservation waiting: Van 7, %s to %s. Create the booking in the SmartBox bridge. smartbox-bridge fleetio book %d",
		got.StartedAt.Format(layout), got.EndedAt.Format(layout), a.ID)
	require.Equal(t, want, render(t, told[0], notify.MethodSMS))
}
