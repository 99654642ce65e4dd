package notify_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/notify"
)

func TestDefaultTemplatesRender(t *testing.T) {
	tm, err := notify.LoadTemplates("")
	require.NoError(t, err)
	data := notify.SampleData()
	for _, k := range notify.Kinds {
		for _, m := range notify.Methods {
			t.Run(string(k)+"."+string(m), func(t *testing.T) {
				require.Contains(t, tm.Source(k, m), "built-in")
				r, err := tm.Render(k, m, notify.SampleRecipient, data)
				require.NoError(t, err)
				require.NotContains(t, r.Body, "<no value>")
				if k != notify.KindKeypadAttack && k != notify.KindKeypadClosed { // a box's alert, no vehicle in it
					require.Contains(t, r.Body, data[notify.DataVehicle].(string)[:6])
				}
				if m == notify.MethodEmail {
					require.NotEmpty(t, r.Subject)
					require.NotContains(t, r.Subject, "482913", "a PIN in a subject shows on lock screens")
					require.False(t, strings.HasPrefix(r.Body, "\n"))
				} else {
					require.Empty(t, r.Subject)
					require.LessOrEqual(t, len([]rune(r.Body)), 320, "an SMS should fit in two segments")
				}
				switch k {
				case notify.KindBookingCreated, notify.KindBookingUpdated:
					require.Contains(t, r.Body, "482913")
					// The window in the box's zone: 15:00 UTC is 09:00 CST.
					require.Contains(t, r.Body, "Mon 2 Mar 2026 09:00 CST")
					require.Contains(t, r.Body, "bridge.example.com/b/sample-token")
				case notify.KindBookingCancelled, notify.KindKeyOverdue, notify.KindPromptReservation:
					require.NotContains(t, r.Body, "482913")
				case notify.KindKeypadAttack:
					require.Contains(t, r.Body, "12 wrong codes")
					require.Contains(t, r.Body, "Depot North box 1")
					require.Contains(t, r.Body, "Mon 2 Mar 2026 18:00 CST", "the time in the box's zone")
					require.NotContains(t, r.Body, "482913")
				case notify.KindKeypadClosed:
					// Which box, since when, until when, and how to reopen it.
					require.Contains(t, r.Body, "Depot North box 1")
					require.Contains(t, r.Body, "Mon 2 Mar 2026 18:00 CST", "closed at, in the box's zone")
					require.Contains(t, r.Body, "Thu 5 Mar 2026 06:00 CST", "until, in the box's zone")
					require.Contains(t, r.Body, "smartbox-bridge restore-keypad --box depot-north-1 --by ")
					require.Contains(t, r.Body, "12 wrong codes")
					require.NotContains(t, r.Body, "482913")
				case notify.KindNotLive:
					// Which box, which booking, since when, the box's status.
					require.Contains(t, r.Body, "Depot North box 1")
					require.Contains(t, r.Body, "Alex Driver")
					require.Contains(t, r.Body, "Mon 2 Mar 2026 09:00 CST", "the start, in the box's zone")
					require.Contains(t, r.Body, "Mon 2 Mar 2026 18:00 CST", "waiting since, in the box's zone")
					require.Contains(t, r.Body, "offline, last at revision 7")
					require.NotContains(t, r.Body, "482913")
				case notify.KindReturnUnconfirmed:
					require.Contains(t, r.Body, "300 ms")
					require.Contains(t, r.Body, "Van 12 key")
					require.NotContains(t, r.Body, "482913")
				}
			})
		}
	}
}

func TestTemplatesOptionalAndRequiredData(t *testing.T) {
	tm, err := notify.LoadTemplates("")
	require.NoError(t, err)
	data := notify.SampleData()
	delete(data, notify.DataAccessLink)
	delete(data, notify.DataLocation)
	r, err := tm.Render(notify.KindBookingCreated, notify.MethodEmail, notify.SampleRecipient, data)
	require.NoError(t, err, "access link and location are optional")
	require.NotContains(t, r.Body, "Booking details")

	delete(data, notify.DataPIN)
	_, err = tm.Render(notify.KindBookingCreated, notify.MethodSMS, notify.SampleRecipient, data)
	require.ErrorContains(t, err, `"pin"`)
	require.ErrorContains(t, err, "booking_created.sms")

	data = notify.SampleData()
	data[notify.DataStart] = 42
	_, err = tm.Render(notify.KindBookingCreated, notify.MethodSMS, notify.SampleRecipient, data)
	require.ErrorContains(t, err, "want a time")

	data = notify.SampleData()
	data[notify.DataStart] = "tomorrow 9am"
	data[notify.DataTimeZone] = ""
	r, err = tm.Render(notify.KindBookingCreated, notify.MethodSMS, notify.SampleRecipient, data)
	require.NoError(t, err)
	require.Contains(t, r.Body, "tomorrow 9am to Mon 2 Mar 2026 23:00 UTC")

	data[notify.DataTimeZone] = "Mars/Olympus"
	_, err = tm.Render(notify.KindBookingCreated, notify.MethodSMS, notify.SampleRecipient, data)
	require.ErrorContains(t, err, "Mars/Olympus")
}

func TestTemplatesOverrideDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "booking_created.email.tmpl", "Subject: Keys for {{.vehicle}}\n\nHi {{.recipient.Name}}, code {{.pin}} at {{.box}} until {{when .end .time_zone}}.\n")
	write(t, dir, "README.txt", "not a template: ignored")
	tm, err := notify.LoadTemplates(dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "booking_created.email.tmpl"), tm.Source(notify.KindBookingCreated, notify.MethodEmail))
	require.Contains(t, tm.Source(notify.KindBookingCreated, notify.MethodSMS), "built-in")

	r, err := tm.Render(notify.KindBookingCreated, notify.MethodEmail, notify.Recipient{Name: "Sam"}, notify.SampleData())
	require.NoError(t, err)
	require.Equal(t, "Keys for Van 12 (Ford Transit)", r.Subject)
	require.Equal(t, "Hi Sam, code 482913 at Depot North box 1 until Mon 2 Mar 2026 17:00 CST.\n", r.Body)

	r, err = tm.Render(notify.KindBookingCreated, notify.MethodSMS, notify.Recipient{Name: "Sam"}, notify.SampleData())
	require.NoError(t, err)
	require.Contains(t, r.Body, "PIN 482913", "the SMS default stays")
}

func TestTemplatesBrokenFailAtLoad(t *testing.T) {
	tests := []struct {
		name, file, text, want string
	}{
		{"parse error", "booking_created.sms.tmpl", "PIN {{.pin", "booking_created.sms.tmpl"},
		{"unknown function", "booking_updated.sms.tmpl", "{{shout .pin}}", `function "shout" not defined`},
		{"missing subject", "key_overdue.email.tmpl", "Hello {{.recipient.Name}}\n", `first line must be "Subject: ...`},
		{"empty subject", "key_overdue.email.tmpl", "Subject: \n\nbody\n", "subject renders empty"},
		{"empty body", "key_overdue.sms.tmpl", "{{/* nothing */}}", "body renders empty"},
		{"unknown key", "booking_cancelled.sms.tmpl", "{{.pni}}", `map has no entry for key "pni"`},
		{"wrong use of a time", "booking_cancelled.sms.tmpl", "{{.start.Nope}}", "Nope"},
		{"SMS too long", "booking_created.sms.tmpl", strings.Repeat("{{.instructions}}", 30), "over the gateway's 1600"},
		{"typo in name", "booking_create.email.tmpl", "Subject: x\n\ny", "name is not <kind>.<method>.tmpl"},
		{"unknown method", "booking_created.fax.tmpl", "x", "name is not <kind>.<method>.tmpl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tt.file, tt.text)
			_, err := notify.LoadTemplates(dir)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, tt.file, "the error names the file")
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		_, err := notify.LoadTemplates(filepath.Join(t.TempDir(), "nope"))
		require.ErrorContains(t, err, "template directory")
	})
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
}
