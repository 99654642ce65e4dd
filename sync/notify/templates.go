package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
	// A booking's window is shown in the box's zone; a bridge in a minimal
	// container has no /usr/share/zoneinfo, so the zone database is built in.
	_ "time/tzdata"
)

//go:embed templates/*.tmpl
var defaultTemplates embed.FS

// Templates holds one parsed template per kind and method. It is immutable
// after LoadTemplates and safe for concurrent use.
type Templates struct {
	byName map[string]*template.Template // "<kind>.<method>"
	source map[string]string             // where each came from: "default" or a file path
}

// Rendered is a message ready to send. Subject is empty for SMS.
type Rendered struct {
	Subject string
	Body    string
}

// maxSMSBody is Twilio's limit on a message body (characters); a longer
// body is refused by the gateway, so a template that renders longer is
// refused at load time against the sample data.
const maxSMSBody = 1600

// LoadTemplates parses the built-in templates and then, when dir is not
// empty, the deployer's overrides in dir: one file per kind and method,
// named "<kind>.<method>.tmpl" (booking_created.email.tmpl). An email
// template starts with a "Subject: ..." line. Every template is rendered
// once against sample data, so a broken one fails here, at start-up, and not
// when a driver is waiting for a PIN. A *.tmpl file whose name is not a
// known kind and method is an error too: a typo would otherwise silently
// leave the default in place.
func LoadTemplates(dir string) (*Templates, error) {
	t := &Templates{byName: map[string]*template.Template{}, source: map[string]string{}}
	for _, k := range Kinds {
		for _, m := range Methods {
			name := templateName(k, m)
			b, err := defaultTemplates.ReadFile("templates/" + name + ".tmpl")
			if err != nil {
				return nil, fmt.Errorf("notify: built-in template %s missing: %w", name, err)
			}
			if err := t.add(name, m, string(b), "built-in "+name+".tmpl"); err != nil {
				return nil, err
			}
		}
	}
	if dir == "" {
		return t, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("notify: template directory: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tmpl") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		name := strings.TrimSuffix(e.Name(), ".tmpl")
		k, m, ok := parseTemplateName(name)
		if !ok {
			return nil, fmt.Errorf("notify: template %s: name is not <kind>.<method>.tmpl (kinds %s; methods email, sms)", path, kindList())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("notify: template %s: %w", path, err)
		}
		if err := t.add(templateName(k, m), m, string(b), path); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Source says where the template for k and m came from (built-in or a path).
func (t *Templates) Source(k Kind, m Method) string { return t.source[templateName(k, m)] }

// Render fills the template for k and m with data (and data["recipient"] =
// to). Errors name the template and the missing or wrong field, never a value.
func (t *Templates) Render(k Kind, m Method, to Recipient, data map[string]any) (Rendered, error) {
	tmpl, ok := t.byName[templateName(k, m)]
	if !ok {
		return Rendered{}, fmt.Errorf("notify: no template for kind %q and method %q", k, m)
	}
	return render(tmpl, m, to, data)
}

func (t *Templates) add(name string, m Method, text, source string) error {
	tmpl, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return fmt.Errorf("notify: template %s: %w", source, err)
	}
	if m == MethodEmail {
		first, _, _ := strings.Cut(text, "\n")
		if !strings.HasPrefix(first, "Subject:") {
			return fmt.Errorf("notify: template %s: first line must be \"Subject: ...\"", source)
		}
	}
	r, err := render(tmpl, m, SampleRecipient, SampleData())
	if err != nil {
		return fmt.Errorf("notify: template %s does not render with sample data: %w", source, err)
	}
	if m == MethodEmail && r.Subject == "" {
		return fmt.Errorf("notify: template %s: subject renders empty", source)
	}
	if strings.TrimSpace(r.Body) == "" {
		return fmt.Errorf("notify: template %s: body renders empty", source)
	}
	if m == MethodSMS && len([]rune(r.Body)) > maxSMSBody {
		return fmt.Errorf("notify: template %s: SMS body renders %d characters with sample data, over the gateway's %d", source, len([]rune(r.Body)), maxSMSBody)
	}
	t.byName[name] = tmpl
	t.source[name] = source
	return nil
}

func render(tmpl *template.Template, m Method, to Recipient, data map[string]any) (Rendered, error) {
	dot := make(map[string]any, len(data)+1)
	for k, v := range data {
		dot[k] = v
	}
	dot[DataRecipient] = to
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, dot); err != nil {
		// text/template errors quote the template text and field names,
		// not data values, so a PIN cannot leak through them.
		return Rendered{}, fmt.Errorf("render %s: %w", tmpl.Name(), err)
	}
	out := buf.String()
	if m != MethodEmail {
		return Rendered{Body: strings.TrimSpace(out)}, nil
	}
	first, rest, _ := strings.Cut(out, "\n")
	subject, ok := strings.CutPrefix(first, "Subject:")
	if !ok {
		return Rendered{}, errors.New("render " + tmpl.Name() + ": first line is not \"Subject: ...\"")
	}
	return Rendered{
		Subject: strings.TrimSpace(subject),
		Body:    strings.TrimLeft(strings.TrimRight(rest, " \t\r\n")+"\n", "\r\n"),
	}, nil
}

func templateName(k Kind, m Method) string { return string(k) + "." + string(m) }

func parseTemplateName(name string) (Kind, Method, bool) {
	k, m, ok := strings.Cut(name, ".")
	if !ok || !Kind(k).valid() || !Method(m).valid() {
		return "", "", false
	}
	return Kind(k), Method(m), true
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// funcs are the helpers templates may call.
var funcs = template.FuncMap{
	// when formats a time in the named zone, e.g. "Mon 2 Mar 2026 09:00 CST".
	// A string passes through unchanged; an unknown zone falls back to UTC
	// with the zone shown, so the reader is never told a wrong local time.
	"when": func(v any, zone any) (string, error) {
		switch t := v.(type) {
		case time.Time:
			loc := time.UTC
			if z, _ := zone.(string); z != "" {
				l, err := time.LoadLocation(z)
				if err != nil {
					return "", fmt.Errorf("time zone %q: %w", z, err)
				}
				loc = l
			}
			return t.In(loc).Format("Mon 2 Jan 2006 15:04 MST"), nil
		case string:
			return t, nil
		default:
			return "", fmt.Errorf("when: want a time, got %T", v)
		}
	},
}

// SampleRecipient and SampleData are what every template is tried with at
// load time; a deployer's template may use any key they hold.
var SampleRecipient = Recipient{Name: "Alex Driver", Email: "alex@example.com", Phone: "+15555550100"}

// SampleData returns a fresh map with every documented Data key.
func SampleData() map[string]any {
	start := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	return map[string]any{
		DataBox:          "Depot North box 1",
		DataBoxID:        "depot-north-1",
		DataLocation:     "12 Fleet Way, Springfield",
		DataKey:          "Van 12 key",
		DataVehicle:      "Van 12 (Ford Transit)",
		DataStart:        start,
		DataEnd:          start.Add(8 * time.Hour),
		DataTimeZone:     "America/Chicago",
		DataPIN:          "482913",
		DataAccessLink:   "https://bridge.example.com/b/sample-token",
		DataInstructions: "Type the PIN on the keypad, then #. The slot opens; take the key and close the door.",
		DataAdminLink:    "https://bridge.example.com/admin/reservations",
		DataDriver:       "Alex Driver",
		DataAt:           start.Add(9 * time.Hour),
		DataUntil:        start.Add(69 * time.Hour),
		DataCount:        "12",
		DataReason:       "the key sensor saw it seated for 300 ms, under the 2s settle time",
		DataBoxStatus:    "offline, last at revision 7",
		DataRevision:     "9",
	}
}
