package notify_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartbox-oss/smartbox/sync/notify"
)

// A gateway answer is outside bytes: any status and body give a result or
// an error, never a panic, and an error never claims success.
func FuzzParseSMSAnswer(f *testing.F) {
	f.Add(201, []byte(`{"sid":"SM1","status":"queued"}`))
	f.Add(400, []byte(`{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`))
	f.Add(429, []byte(`{"code":"20429"}`))
	f.Add(500, []byte(`<html>`))
	f.Add(200, []byte(`null`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		res, err := notify.ParseSMSAnswer(status, body)
		if err == nil {
			if status < 200 || status > 299 || res.SID == "" {
				t.Fatalf("status %d accepted: %+v", status, res)
			}
			return
		}
		var se *notify.SMSError
		if errors.As(err, &se) && se.HTTPStatus != status {
			t.Fatalf("status %d reported as %d", status, se.HTTPStatus)
		}
		_ = err.Error()
	})
}

// A deployer's template file either loads or fails with an error naming
// the file; it never panics.
func FuzzLoadTemplate(f *testing.F) {
	f.Add("booking_created.sms.tmpl", "PIN {{.pin}} {{when .start .time_zone}}")
	f.Add("key_overdue.email.tmpl", "Subject: {{.key}}\n\nbody")
	f.Add("booking_created.email.tmpl", "Subject: x\n{{template \"x\"}}")
	f.Add("booking_updated.sms.tmpl", "{{range .recipient}}{{end}}")
	f.Fuzz(func(t *testing.T, name, text string) {
		if strings.ContainsAny(name, "/\\\x00") || name == "" || name == "." || name == ".." {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return
		}
		_, err := notify.LoadTemplates(dir)
		if err != nil && !strings.Contains(err.Error(), "template") {
			t.Fatalf("error does not say what: %v", err)
		}
	})
}
