package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testSet is a program "prog" with a nested set "prog sub", each command
// showing what it got on stdout.
func testSet() *Set {
	sub := &Set{
		Name:   "prog sub",
		Header: "usage: prog sub COMMAND\n\n",
		Width:  6,
		Commands: []Command{
			{Name: "deep", Summary: "a nested command", Run: func(_ context.Context, args []string, stdout, _ io.Writer) error {
				fmt.Fprintf(stdout, "deep %q\n", args)
				return nil
			}},
		},
	}
	return &Set{
		Name:   "prog",
		Header: "usage: prog COMMAND\n\n",
		Width:  8,
		Commands: []Command{
			{Name: "echo", Summary: "ARGS...  print the arguments", Run: func(_ context.Context, args []string, stdout, _ io.Writer) error {
				fmt.Fprintln(stdout, strings.Join(args, " "))
				return nil
			}},
			{Name: "flags", Summary: "--n N  parse a flag\ncontinued", Run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				fs := NewFlagSet("prog flags", stderr)
				n := fs.Int("n", 0, "a number")
				if err := fs.Parse(args); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "n=%d\n", *n)
				return nil
			}},
			{Name: "refuse", Summary: "a usage error", Run: func(context.Context, []string, io.Writer, io.Writer) error {
				return Usagef("--x %q: want y", "z")
			}},
			{Name: "fail", Summary: "a failure", Run: func(context.Context, []string, io.Writer, io.Writer) error {
				return fmt.Errorf("the store: %w", errors.New("disk full"))
			}},
			{Name: "sub", Summary: "nested commands", Run: sub.Run},
		},
		Footer: "\nfooter\n",
	}
}

func TestSetMain(t *testing.T) {
	usage := "usage: prog COMMAND\n\n" +
		"  echo    ARGS...  print the arguments\n" +
		"  flags   --n N  parse a flag\n" +
		"          continued\n" +
		"  refuse  a usage error\n" +
		"  fail    a failure\n" +
		"  sub     nested commands\n" +
		"\nfooter\n"
	subUsage := "usage: prog sub COMMAND\n\n  deep  a nested command\n"
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		out      string
		errOut   string // exact, when errHas is empty
		errHas   string
		errLacks string
	}{
		{name: "command", args: []string{"echo", "a", "b"}, code: ExitOK, out: "a b\n"},
		{name: "no command", args: nil, code: ExitUsage, errOut: usage},
		{name: "help", args: []string{"help"}, code: ExitOK, errOut: usage},
		{name: "-h", args: []string{"-h"}, code: ExitOK, errOut: usage},
		{name: "--help", args: []string{"--help", "echo"}, code: ExitOK, errOut: usage},
		{name: "unknown command", args: []string{"flash"}, code: ExitUsage, errOut: "prog: unknown command \"flash\"\n\n" + usage},
		{name: "usage error", args: []string{"refuse"}, code: ExitUsage, errOut: "prog refuse: --x \"z\": want y\n"},
		{name: "failure", args: []string{"fail"}, code: ExitFailure, errOut: "prog fail: the store: disk full\n"},
		{name: "flag", args: []string{"flags", "-n", "3"}, code: ExitOK, out: "n=3\n"},
		// The flag package prints the mistake and the flags; nothing more.
		{name: "flag error", args: []string{"flags", "-m"}, code: ExitUsage, errHas: "flag provided but not defined: -m", errLacks: "prog flags: "},
		{name: "flag value error", args: []string{"flags", "-n", "x"}, code: ExitUsage, errHas: `invalid value "x" for flag -n`, errLacks: "prog flags: "},
		{name: "flag -h", args: []string{"flags", "-h"}, code: ExitOK, errHas: "Usage of prog flags:"},
		{name: "positional", args: []string{"flags", "x"}, code: ExitUsage, errOut: "prog flags: unexpected argument \"x\"\n"},
		{name: "nested", args: []string{"sub", "deep", "x"}, code: ExitOK, out: "deep [\"x\"]\n"},
		{name: "nested no command", args: []string{"sub"}, code: ExitUsage, errOut: subUsage},
		{name: "nested help", args: []string{"sub", "help"}, code: ExitOK, errOut: subUsage},
		{name: "nested unknown", args: []string{"sub", "nope"}, code: ExitUsage, errOut: "prog sub: unknown command \"nope\"\n\n" + subUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := testSet().Main(context.Background(), tc.args, &out, &errOut)
			require.Equal(t, tc.code, code, errOut.String())
			require.Equal(t, tc.out, out.String())
			if tc.errHas == "" {
				require.Equal(t, tc.errOut, errOut.String())
			} else {
				require.Contains(t, errOut.String(), tc.errHas)
			}
			if tc.errLacks != "" {
				require.NotContains(t, errOut.String(), tc.errLacks)
			}
		})
	}
}

func TestUsageLongName(t *testing.T) {
	s := &Set{Width: 4, Commands: []Command{{Name: "provision", Summary: "--data DIR"}, {Name: "ab", Summary: "x"}}}
	require.Equal(t, "  provision --data DIR\n  ab  x\n", s.Usage())
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		names []string
		pos   []string
		box   string
		err   string // "" ok; "shown": a usage error the flag package printed
	}{
		{name: "flags first", args: []string{"--box", "b", "12"}, names: []string{"VEHICLE"}, pos: []string{"12"}, box: "b"},
		{name: "flags after", args: []string{"12", "--box", "b"}, names: []string{"VEHICLE"}, pos: []string{"12"}, box: "b"},
		{name: "flags between", args: []string{"1", "--box", "b", "2"}, names: []string{"A", "B"}, pos: []string{"1", "2"}, box: "b"},
		{name: "missing", args: []string{"--box", "b"}, names: []string{"VEHICLE"}, err: "missing VEHICLE"},
		{name: "missing two", args: nil, names: []string{"A", "B"}, err: "missing A B"},
		{name: "unexpected", args: []string{"1", "2"}, names: []string{"A"}, err: `unexpected argument "2"`},
		{name: "none wanted", args: []string{"--box", "b", "x"}, err: `unexpected argument "x"`},
		{name: "bad flag after", args: []string{"1", "--nope"}, names: []string{"A"}, err: "shown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := NewFlagSet("prog link", io.Discard)
			box := fs.String("box", "", "box id")
			pos, err := fs.ParseArgs(tc.args, tc.names...)
			if tc.err == "" {
				require.NoError(t, err)
				require.Equal(t, tc.pos, pos)
				require.Equal(t, tc.box, *box)
				return
			}
			var ue UsageError
			require.ErrorAs(t, err, &ue)
			if tc.err == "shown" {
				require.True(t, ue.Shown)
			} else {
				require.False(t, ue.Shown)
				require.Equal(t, tc.err, ue.Msg)
			}
		})
	}
}

func TestPositionalAny(t *testing.T) {
	fs := NewFlagSet("prog import", io.Discard)
	slots := fs.Int("slots", 0, "")
	pos, err := fs.Positional([]string{"a.json", "--slots", "4", "b.json"})
	require.NoError(t, err)
	require.Equal(t, []string{"a.json", "b.json"}, pos)
	require.Equal(t, 4, *slots)
}

func TestCall(t *testing.T) {
	errService := errors.New("service down")
	for _, tc := range []struct {
		name    string
		args    []string
		names   []string
		callErr error
		called  bool
		printed string
		err     string
	}{
		{name: "ok", args: []string{"-v", "x"}, called: true, printed: "answer for [] v=x"},
		{name: "positional", args: []string{"12", "-v", "x"}, names: []string{"ID"}, called: true, printed: "answer for [12] v=x"},
		{name: "flag error: no call", args: []string{"-w"}, err: "flag provided but not defined: -w"},
		{name: "positional error: no call", args: []string{"12"}, err: `unexpected argument "12"`},
		{name: "missing: no call", args: nil, names: []string{"ID"}, err: "missing ID"},
		{name: "call error: no print", args: nil, callErr: errService, called: true, err: "service down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := NewFlagSet("prog get", io.Discard)
			v := fs.String("v", "", "")
			called, printed := false, ""
			err := Call(fs, tc.args, tc.names, func(pos []string) (string, error) {
				called = true
				return fmt.Sprintf("answer for %v v=%s", pos, *v), tc.callErr
			}, func(answer string) error {
				printed = answer
				return nil
			})
			require.Equal(t, tc.called, called)
			require.Equal(t, tc.printed, printed)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, tc.err)
			}
		})
	}
}
