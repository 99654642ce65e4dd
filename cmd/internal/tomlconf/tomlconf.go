package tomlconf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// File is a config file being read: its path, for messages, and its bytes,
// to find the line of a field that fails validation.
type File struct {
	Path string
	Src  []byte
}

// Name is the file name messages use: the base name keeps them short and is
// what a technician sees in the editor's title. "config" without a path.
func (f File) Name() string {
	if f.Path == "" {
		return "config"
	}
	return filepath.Base(f.Path)
}

// typeErrRE matches the plain errors toml gives for type mismatches.
var typeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// Decode decodes f.Src into v. Syntax and type errors come back as
// "name:line: key: message". The MetaData is for UnknownKey.
func (f File) Decode(v any) (toml.MetaData, error) {
	md, err := toml.NewDecoder(bytes.NewReader(f.Src)).Decode(v)
	if err == nil {
		return md, nil
	}
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		line := pe.Position.Line
		// An error "at" the newline that ends a line (an unclosed [table)
		// is reported on the next line; point at the line to fix.
		if st := pe.Position.Start; st >= 0 && st < len(f.Src) && f.Src[st] == '\n' {
			line = bytes.Count(f.Src[:st], []byte("\n")) + 1
		}
		return md, fmt.Errorf("%s:%d: %s", f.Name(), line, msg)
	}
	// Type mismatches come as plain errors shaped
	// `toml: line N (last key "k"): msg`: reshape them like the rest.
	if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
		return md, fmt.Errorf("%s:%s: %s: %s", f.Name(), m[1], m[2], m[3])
	}
	return md, fmt.Errorf("%s: %w", f.Name(), err)
}

// UnknownKey is the error for the first key of the file that md did not
// decode into anything, or nil when there is none. program is the command
// whose version may lack the key.
func (f File) UnknownKey(md toml.MetaData, program string) error {
	und := md.Undecoded()
	if len(und) == 0 {
		return nil
	}
	return f.FieldErr(und[0].String(), "unknown key (misspelt, or not in this version of %s)", program)
}

// FieldErr makes "name:line: field: msg", with the line of field when it is
// written in the file (defaults have no line).
func (f File) FieldErr(field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := FindKeyLine(f.Src, field); line > 0 {
		return fmt.Errorf("%s:%d: %s: %s", f.Name(), line, field, msg)
	}
	return fmt.Errorf("%s: %s: %s", f.Name(), field, msg)
}

// FindKeyLine returns the 1-based line where the dotted key is written in
// src (as "key = ..." under its table, a dotted key, or a [table] or
// [[table]] header), or 0. toml's MetaData has no public positions for keys.
func FindKeyLine(src []byte, key string) int {
	want := strings.Split(key, ".")
	var table []string
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		var full []string
		switch {
		case s == "" || s[0] == '#':
			continue
		case strings.HasPrefix(s, "[["):
			end := strings.Index(s, "]]")
			if end < 0 {
				continue
			}
			table = splitKey(s[2:end])
			full = table
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				continue
			}
			table = splitKey(s[1:end])
			full = table
		default:
			eq := strings.IndexByte(s, '=')
			if eq < 0 {
				continue
			}
			full = append(slices.Clone(table), splitKey(s[:eq])...)
		}
		if slices.Equal(full, want) {
			return line
		}
	}
	return 0
}

// splitKey splits a dotted key into its parts, unquoted.
func splitKey(s string) []string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}

// Duration is a time.Duration written as a string with a unit ("5s",
// "720h").
//
// toml's own time.Duration support takes a bare integer as nanoseconds, so
// `release = 5` would mean 5 ns; Duration refuses anything but a string with
// a unit. E gives the examples its error message suggests, ones that fit the
// command's fields; a command names its type once:
//
//	type Duration = tomlconf.Duration[durationExamples]
type Duration[E Examples] struct{ time.Duration }

// Examples names example durations for Duration's error message, written as
// TOML strings: `"5s" or "250ms"`. Its zero value is used.
type Examples interface{ DurationExamples() string }

// UnmarshalText parses a Go duration string.
func (d *Duration[E]) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		var e E
		return fmt.Errorf("%q is not a duration: write it as a string with a unit, e.g. %s", b, e.DurationExamples())
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back as a string.
func (d Duration[E]) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
