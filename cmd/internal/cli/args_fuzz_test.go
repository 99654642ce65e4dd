package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// linkArgs is what the fuzzed "link" command parsed: the shape of
// `smartbox-bridge fleetio link VEHICLE --box B --key K [--force]`.
type linkArgs struct {
	vehicle, box string
	slot         int
	force        bool
}

// linkSet is a program with one command that takes flags on either side
// of one positional argument, as the real subcommands do.
func linkSet(got *linkArgs) *Set {
	return &Set{Name: "prog", Width: 6, Commands: []Command{{Name: "link", Summary: "VEHICLE --box B [--slot N] [--force]",
		Run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
			fs := NewFlagSet("prog link", stderr)
			b := fs.String("box", "", "box id")
			slot := fs.Int("slot", 0, "slot")
			force := fs.Bool("force", false, "force")
			pos, err := fs.ParseArgs(args, "VEHICLE")
			if err != nil {
				return err
			}
			*got = linkArgs{vehicle: pos[0], box: *b, slot: *slot, force: *force}
			_, err = io.WriteString(stdout, "linked\n")
			return err
		}}}}
}

// FuzzArgs runs a command line (arguments split at NUL) through the
// dispatcher and a flag set: it never panics, exits 0, 1 or 2 as the
// package says (2 exactly for a mistake on the command line), prints an
// answer on stdout only when the command ran, and what it parsed parses
// the same from its canonical spelling (--flag=value, then -- and the
// positional argument).
func FuzzArgs(f *testing.F) {
	f.Add("link\x0012\x00--box\x00depot-1")
	f.Add("link\x00--box=depot-1\x00--slot\x003\x0012\x00--force")
	f.Add("link\x00--\x00-12")
	f.Add("link\x00--slot\x00x\x0012")
	f.Add("link\x0012\x0013")
	f.Add("link\x00-h")
	f.Add("help")
	f.Add("lnk\x0012")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		var got linkArgs
		var stdout, stderr bytes.Buffer
		code := linkSet(&got).Main(context.Background(), args, &stdout, &stderr)
		require.Contains(t, []int{ExitOK, ExitFailure, ExitUsage}, code)
		ran := stdout.String() == "linked\n"
		require.True(t, ran || stdout.Len() == 0, "stdout without an answer: %q", stdout.String())
		if !ran {
			return
		}
		require.Equal(t, ExitOK, code)
		canon := []string{"link", "--box=" + got.box, "--slot=" + strconv.Itoa(got.slot),
			"--force=" + strconv.FormatBool(got.force), "--", got.vehicle}
		var again linkArgs
		stdout.Reset()
		require.Equal(t, ExitOK, linkSet(&again).Main(context.Background(), canon, &stdout, &stderr), "%q: %s", canon, stderr.String())
		require.Equal(t, got, again)
	})
}

// FuzzParseLogLevel: a --log-level value is a level that reads back the
// same from its name, or a UsageError (exit 2).
func FuzzParseLogLevel(f *testing.F) {
	for _, s := range []string{"debug", "INFO", "warn", "error", "info+2", "loud", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		level, err := ParseLogLevel(s)
		if err != nil {
			var ue UsageError
			require.True(t, errors.As(err, &ue), "not a usage error: %v", err)
			require.Equal(t, ExitUsage, Exit(err, "prog", io.Discard))
			return
		}
		again, err := ParseLogLevel(level.String())
		require.NoError(t, err)
		require.Equal(t, level, again)
	})
}
